"""Request count and latency per route, with the request's database and Redis time.

The route label is the URL pattern that matched (`api/v1/stickers/<int:sticker_id>/votes`), or
`<unmatched>` when none did, and unknown methods are `other`: label values come from the code,
never from the client, so the number of series stays bounded whatever is requested.

It is the outermost middleware, so the latency covers the others too. The vote path is
benchmarked: the per-request work is two clock reads, a context variable, and four updates of
label children cached in dicts (prometheus-client's `labels()` validates and locks on each call).
"""

from collections.abc import Callable
from time import perf_counter
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase

from core.metrics.families import (
    HTTP_REQUEST_DATABASE,
    HTTP_REQUEST_DURATION,
    HTTP_REQUEST_REDIS,
    HTTP_REQUESTS,
)
from core.metrics.timing import RequestTimes, request_times

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        if not settings.METRICS_ENABLED:
            raise MiddlewareNotUsed
        self.get_response = get_response
        # (route, method, status) -> the counter's and the latency histogram's children;
        # route -> the database and Redis time histograms' children.
        self._by_status: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._by_route: dict[str, tuple[Any, Any]] = {}

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        times = RequestTimes()
        token = request_times.set(times)
        started = perf_counter()
        try:
            response = self.get_response(request)
        finally:
            request_times.reset(token)
        elapsed = perf_counter() - started
        match = request.resolver_match
        route = match.route if match is not None else UNMATCHED
        method = request.method if request.method in METHODS else "other"
        status = response.status_code
        by_status = self._by_status.get((route, method, status))
        if by_status is None:
            by_status = (
                HTTP_REQUESTS.labels(route, method, str(status)),
                HTTP_REQUEST_DURATION.labels(route, method, str(status)),
            )
            self._by_status[(route, method, status)] = by_status
        by_route = self._by_route.get(route)
        if by_route is None:
            by_route = (HTTP_REQUEST_DATABASE.labels(route), HTTP_REQUEST_REDIS.labels(route))
            self._by_route[route] = by_route
        by_status[0].inc()
        by_status[1].observe(elapsed)
        by_route[0].observe(times.database)
        by_route[1].observe(times.redis)
        return response
