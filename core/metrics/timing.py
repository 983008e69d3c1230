"""Database and Redis time spent by the current request.

The request middleware opens a `RequestTimes` for each request in a context variable; the
database execute wrapper, the prepared-statement helper (core.db.fetch_prepared, which bypasses
Django's wrappers) and the Redis connection class add to it. Outside a request (Celery tasks,
management commands) the variable is None and they only pay for reading it.

Imports neither Django settings nor any app: config.settings names `TimedRedisConnection`.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from redis.connection import Connection


class RequestTimes:
    __slots__ = ("database", "redis")

    def __init__(self) -> None:
        self.database = 0.0
        self.redis = 0.0


request_times: ContextVar[RequestTimes | None] = ContextVar("chorus_request_times", default=None)


def database_execute_wrapper(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """A Django execute wrapper (installed on every connection) timing each query."""
    times = request_times.get()
    if times is None:
        return execute(sql, params, many, context)
    started = perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        times.database += perf_counter() - started


@contextmanager
def _timed(kind: str) -> Iterator[None]:
    times = request_times.get()
    if times is None:
        yield
        return
    started = perf_counter()
    try:
        yield
    finally:
        setattr(times, kind, getattr(times, kind) + perf_counter() - started)


def database_timed() -> AbstractContextManager[None]:
    """Time a query that does not go through Django's cursor wrappers."""
    return _timed("database")


def redis_timed() -> AbstractContextManager[None]:
    """Time Redis work that does not go through `TimedRedisConnection` (core.redis_round_trip)."""
    return _timed("redis")


class TimedRedisConnection(Connection):
    """redis-py's TCP connection (hiredis parser included) that adds the time spent writing
    commands and waiting for replies to the current request.

    A health check sends a PING from inside `send_packed_command`: `_timing` keeps that nested
    round trip from being counted twice. Used for the cache and throttle connections
    (CACHES OPTIONS CONNECTION_POOL_KWARGS); Celery's broker publishes go through kombu's own
    connections and are not counted.
    """

    _timing = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        times = request_times.get()
        if times is None or self._timing:
            return super().send_packed_command(command, check_health)
        self._timing = True
        started = perf_counter()
        try:
            return super().send_packed_command(command, check_health)
        finally:
            times.redis += perf_counter() - started
            self._timing = False

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        times = request_times.get()
        if times is None or self._timing:
            return super().read_response(*args, **kwargs)
        self._timing = True
        started = perf_counter()
        try:
            return super().read_response(*args, **kwargs)
        finally:
            times.redis += perf_counter() - started
            self._timing = False
