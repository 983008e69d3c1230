"""Errors that services raise. The API turns each into a problem document with its status and code.

Services do not know about HTTP; they raise one of these with a stable machine-readable `code`,
and `core.errors` maps the class to a status.
"""

from typing import Any


class ServiceError(Exception):
    status_code = 400
    default_code = "invalid"
    default_detail = "The request cannot be carried out."

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, errors: Any = None
    ) -> None:
        self.detail = detail or self.default_detail
        self.code = code or self.default_code
        # Optional per-field messages, {field: [message, ...]}, as in a validation error.
        self.errors = errors
        super().__init__(self.detail)


class InvalidInput(ServiceError):
    status_code = 400
    default_code = "invalid"
    default_detail = "Invalid input."


class Forbidden(ServiceError):
    status_code = 403
    default_code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class NotFound(ServiceError):
    status_code = 404
    default_code = "not_found"
    default_detail = "Not found."


class Conflict(ServiceError):
    status_code = 409
    default_code = "conflict"
    default_detail = "The request conflicts with the current state of the resource."
