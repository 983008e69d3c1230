"""RFC 9457 problem documents for every error the API produces.

drf-standardized-errors catches every exception raised in a DRF view (including non-DRF ones,
which become a 500 without leaking details); the formatter below shapes its output as
`application/problem+json` with a stable `code` and, for validation errors, an `errors` object
mapping field names to messages. Django-level errors outside DRF views (unknown URLs, 500s in
middleware) are rendered by `core.api.views` with the same shape.
"""

import math
from http import HTTPStatus
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from drf_standardized_errors.formatter import ExceptionFormatter
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings

from core.exceptions import Conflict, ServiceError

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_type(code: str) -> str:
    # A URN rather than a URL: stable, and it does not pretend a documentation host exists.
    return f"urn:chorus:problem:{code}"


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    title: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    if instance:
        body["instance"] = instance
    return body


# Problems Django itself answers (outside DRF views): status -> (code, detail).
HTTP_PROBLEMS = {
    400: ("bad_request", "The request could not be understood."),
    403: ("permission_denied", "You may not do this."),
    404: ("not_found", "No resource at this address."),
    405: ("method_not_allowed", "This method is not allowed here."),
    500: ("server_error", "The server could not complete the request."),
}


def problem_response(request: HttpRequest, status: int) -> JsonResponse:
    """The problem document for one of HTTP_PROBLEMS, as a plain Django response."""
    code, detail = HTTP_PROBLEMS[status]
    return JsonResponse(
        problem(status, code, detail, instance=request.path),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )


class ServiceAPIException(exceptions.APIException):
    """Carries a ServiceError's status, code and field errors through the DRF handler."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(detail=error.detail, code=error.code)
        self.status_code = error.status_code
        self.field_errors = error.errors


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "A backing service is unavailable; try again shortly."
    default_code = "service_unavailable"
    # Seconds a client should wait before retrying (Retry-After).
    retry_after = 5


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached (restarting, failing over): nothing was changed."""

    default_detail = "The database is unavailable; nothing was changed. Try again shortly."
    default_code = "database_unavailable"


# Errors that mean "the database is not there" rather than "this request is wrong": a refused or
# dropped connection (OperationalError) or one Django already knows is closed (InterfaceError).
DATABASE_DOWN_ERRORS = (OperationalError, InterfaceError)


def database_unavailable_response(request: HttpRequest) -> JsonResponse:
    """The 503 for a database outage outside DRF views (middleware, the admin)."""
    exc = DatabaseUnavailable()
    response = JsonResponse(
        problem(503, exc.default_code, str(exc.default_detail), instance=request.path),
        status=503,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    response["Retry-After"] = str(exc.retry_after)
    return response


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _field_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error detail into {"field.sub.0": [messages]}."""
    out: dict[str, list[str]] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            if all(not isinstance(item, dict | list) for item in value):
                if value:
                    out.setdefault(path or api_settings.NON_FIELD_ERRORS_KEY, []).extend(
                        str(item) for item in value
                    )
            else:
                for index, item in enumerate(value):
                    walk(item, f"{path}.{index}" if path else str(index))
        else:
            out.setdefault(path or api_settings.NON_FIELD_ERRORS_KEY, []).append(str(value))

    walk(detail, prefix)
    return out


def _first_code(detail: Any) -> str | None:
    if isinstance(detail, dict):
        for value in detail.values():
            found = _first_code(value)
            if found:
                return found
    elif isinstance(detail, list):
        for value in detail:
            found = _first_code(value)
            if found:
                return found
    elif isinstance(detail, exceptions.ErrorDetail):
        return detail.code
    return None


class ProblemFormatter(ExceptionFormatter):
    def run(self) -> dict[str, Any]:
        exc = self.exc
        status = exc.status_code
        request = self.context.get("request") if self.context else None
        instance = request.path if request is not None else None
        if isinstance(exc, exceptions.ValidationError):
            errors = _field_errors(exc.detail)
            fields = [name for name in errors if name != api_settings.NON_FIELD_ERRORS_KEY]
            if fields:
                detail = "Invalid input: " + "; ".join(
                    f"{name}: {errors[name][0]}" for name in fields[:5]
                )
            else:
                detail = next(iter(errors.values()))[0] if errors else "Invalid input."
            # A single non-field error with its own code (e.g. "invalid_credentials") keeps it.
            code = "invalid"
            if not fields:
                code = _first_code(exc.detail) or "invalid"
            return problem(status, code, detail, errors=errors, instance=instance)
        if isinstance(exc, ServiceAPIException):
            service_code = getattr(exc.detail, "code", None)
            return problem(
                status,
                str(service_code or "error"),
                str(exc.detail),
                errors=exc.field_errors,
                instance=instance,
            )
        raw = exc.detail
        code = str(getattr(raw, "code", None) or exc.default_code)
        if isinstance(raw, dict | list):
            return problem(
                status, code, "Invalid input.", errors=_field_errors(raw), instance=instance
            )
        message = str(raw) if status < 500 else "The server could not complete the request."
        return problem(status, code, message, instance=instance)


class ProblemExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, ServiceError):
            return ServiceAPIException(exc)
        if isinstance(exc, DjangoValidationError):
            return exceptions.ValidationError(
                exc.message_dict if hasattr(exc, "error_dict") else exc.messages
            )
        if isinstance(exc, RequestDataTooBig):
            # Raised when the body is read (Idempotency-Key fingerprint, parsing) past
            # DATA_UPLOAD_MAX_MEMORY_SIZE; Django would answer 400, 413 says why.
            return RequestTooLarge()
        if isinstance(exc, IntegrityError):
            # A constraint caught what validation missed (usually a race); the request is
            # refused and nothing was written.
            return ServiceAPIException(Conflict("The request conflicts with existing data."))
        if isinstance(exc, DataError):
            return exceptions.ValidationError({"non_field_errors": ["A value is out of range."]})
        if isinstance(exc, DATABASE_DOWN_ERRORS):
            return DatabaseUnavailable()
        return super().convert_known_exceptions(exc)

    def get_headers(self, exc: exceptions.APIException) -> dict:
        headers = super().get_headers(exc)
        wait = getattr(exc, "wait", None)
        if wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        if isinstance(exc, ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
        return headers

    def get_response(self, exc: exceptions.APIException, data: dict) -> Response:
        response = super().get_response(exc, data)
        response.content_type = PROBLEM_CONTENT_TYPE
        return response
