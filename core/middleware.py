"""Problem documents for API errors that happen outside DRF views.

Django answers unknown URLs, and errors raised in middleware, with HTML pages (its debug pages
when DEBUG is on). Under the API's paths those answers are replaced with problem documents, so a
client always gets `application/problem+json`. The admin keeps its HTML.
"""

import logging
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from core.errors import (
    DATABASE_DOWN_ERRORS,
    HTTP_PROBLEMS,
    PROBLEM_CONTENT_TYPE,
    database_unavailable_response,
    problem_response,
)

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/healthz", "/readyz")
# what Django itself answers with a 4xx (through the handlers below the URLs: problem documents)
_ANSWERED = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)


class ProblemDetailsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code in HTTP_PROBLEMS
            and request.path.startswith(API_PREFIXES)
            and not response.get("Content-Type", "").startswith(
                ("application/json", PROBLEM_CONTENT_TYPE)
            )
        ):
            return problem_response(request, response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_DOWN_ERRORS):
            # Any path, the admin's too: a database outage is a 503 to retry, not a crash.
            logger.warning("database unavailable on %s: %s", request.path, exception)
            return database_unavailable_response(request)
        if not request.path.startswith(API_PREFIXES) or isinstance(exception, _ANSWERED):
            return None
        logger.exception("unhandled error on %s", request.path)
        return problem_response(request, 500)
