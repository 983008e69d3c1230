"""The project's URLs plus an API view that fails, for tests of what an unhandled error yields."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500, urlpatterns

FAILING_PATH = "/api/v1/_test/fails"


def fails(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [*urlpatterns, path(FAILING_PATH.lstrip("/"), fails)]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
