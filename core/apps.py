from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core plumbing"

    def ready(self) -> None:
        from django.urls import register_converter

        # Registers the OpenAPI description of the bearer token authentication.
        from core import schema  # noqa: F401
        from core.urls import IdConverter

        # `<id:…>` in every app's URL conf, whichever of them is loaded first.
        register_converter(IdConverter, "id")

        if settings.METRICS_ENABLED:
            connection_created.connect(_time_queries, dispatch_uid="core.metrics.time_queries")


def _time_queries(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Every query of this connection adds its time to the current request's (metrics).

    Installed once per connection object (one per thread), which outlives reconnections.
    """
    from core.metrics.timing import database_execute_wrapper

    if database_execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(database_execute_wrapper)
