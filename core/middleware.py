"""Problem documents for API errors that happen outside DRF views.

Django answers unknown URLs, and errors raised in middleware, with HTML pages (its debug pages
when DEBUG is on). Under the API's paths those answers are replaced with problem documents, so a
client always gets `application/problem+json`. The admin keeps its HTML.
"""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import PROBLEM_CONTENT_TYPE, problem

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/healthz", "/readyz")
_DETAILS = {
    400: ("bad_request", "The request could not be understood."),
    403: ("permission_denied", "You may not do this."),
    404: ("not_found", "No resource at this address."),
    405: ("method_not_allowed", "This method is not allowed here."),
    500: ("server_error", "The server could not complete the request."),
}


class ProblemDetailsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code in _DETAILS
            and request.path.startswith(API_PREFIXES)
            and not response.get("Content-Type", "").startswith(
                ("application/json", PROBLEM_CONTENT_TYPE)
            )
        ):
            return self._problem(request, response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIXES):
            return None
        logger.exception("unhandled error on %s", request.path)
        return self._problem(request, 500)

    @staticmethod
    def _problem(request: HttpRequest, status: int) -> JsonResponse:
        code, detail = _DETAILS[status]
        return JsonResponse(
            problem(status, code, detail, instance=request.path),
            status=status,
            content_type=PROBLEM_CONTENT_TYPE,
        )
