"""What every log line says about where it came from: the request id and, in a worker, the task.

A request's id is taken from its `X-Request-Id` header when that is a sane token, generated
otherwise, returned in the response's `X-Request-Id`, and carried in a header of every task the
request enqueues (core.task_log_context), so one id finds a request's lines in the web log and
its tasks' lines in the worker logs. `LogContextFilter` writes it on every record.
"""

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-Id"
_META_KEY = "HTTP_X_REQUEST_ID"
# What we accept from a client (or a proxy) as its request id. Anything else is replaced, never
# echoed: the id goes into every log line and a response header, so it must not carry newlines,
# quotes, JSON or terminal escapes an attacker chose. Compiled once; a match costs ~0.2 µs.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
NONE = "-"


class LogContext(NamedTuple):
    request_id: str | None = None
    task_id: str | None = None
    task_name: str | None = None


_EMPTY = LogContext()
_log_context: ContextVar[LogContext] = ContextVar("chorus_log_context", default=_EMPTY)


def current_log_context() -> LogContext:
    return _log_context.get()


def current_request_id() -> str | None:
    return _log_context.get().request_id


def set_log_context(context: LogContext) -> Any:
    """Set the context; returns the token `reset_log_context` takes."""
    return _log_context.set(context)


def reset_log_context(token: Any) -> None:
    _log_context.reset(token)


def request_id_from(value: str | None) -> str:
    """The client's id when it is acceptable, else a new one (32 hex digits)."""
    if value is not None and _ACCEPTED_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE, so every response carries the id (problem documents, 404s, errors
    turned into responses by the middleware below it) and every line logged for the request has
    it, Django's own "Not Found"/"Internal Server Error" lines included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.META.get(_META_KEY))
        # Not reset when get_response returns: Django logs an error response after the
        # middleware chain, and gunicorn writes its access line before closing the response;
        # both belong to this request. The id is cleared when the response is closed (below).
        _log_context.set(LogContext(request_id=request_id))
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def _forget_request_id(**kwargs: Any) -> None:
    # The WSGI server closes every response (PEP 3333): from here on this thread serves nothing,
    # so lines it logs until the next request must not carry the last request's id.
    _log_context.set(_EMPTY)


request_finished.connect(_forget_request_id, dispatch_uid="core.log_context.forget_request_id")


class LogContextFilter(logging.Filter):
    """Adds `request_id`, `task_id` and `task_name` to every record ("-" when there is none).

    Installed on the handlers (not on loggers, whose filters skip records propagated from child
    loggers), so both the plain and the JSON formatter can name these fields.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = _log_context.get()
        record.request_id = context.request_id or NONE
        record.task_id = context.task_id or NONE
        record.task_name = context.task_name or NONE
        return True
