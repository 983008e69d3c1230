from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core plumbing"

    def ready(self) -> None:
        # Registers the OpenAPI description of the bearer token authentication.
        from core import schema  # noqa: F401
