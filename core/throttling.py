"""Rate limits kept in Redis as fixed-window counters (one INCR per request and scope).

DRF's SimpleRateThrottle keeps the whole request history in one cache entry, which is read,
rewritten and raced by every process. A counter per window is atomic across any number of web
processes and costs one round trip (core.redis_round_trip). When Redis is unreachable the
throttles let requests through: rate limits are protection, not a guarantee, and an outage of
the cache must not take writes down.
"""

import logging
import time
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.redis_round_trip import RoundTrip

if TYPE_CHECKING:
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@cache
def parse_rate(rate: str) -> tuple[int, int]:
    """'120/min' -> (120, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


class FixedWindowThrottle(BaseThrottle):
    """Counts a request against one or more (scope, identity) windows in one Redis round trip."""

    scope: str = ""

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def get_rate(self, scope: str | None = None) -> tuple[int, int]:
        return parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope or self.scope])

    def get_ident_key(self, request: Request, view: "APIView") -> str | None:
        raise NotImplementedError

    def get_scopes(self, request: Request, view: "APIView") -> list[tuple[str, str]]:
        """The (scope, identity) windows this request counts against."""
        ident = self.get_ident_key(request, view)
        return [] if ident is None else [(self.scope, ident)]

    def stage_extra_commands(self, pipe: RoundTrip, request: Request, view: "APIView") -> None:
        """Hook: Redis commands a view wants sent in the throttle's round trip, after the rate
        counters (a cache read, a mark), so the request makes one round trip, not two. Their
        replies are left in `request.throttle_extra_replies`: see `throttle_extra_replies`."""

    def allow_request(self, request: Request, view: "APIView") -> bool:
        scopes = self.get_scopes(request, view)
        now = time.time()
        prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
        windows = []
        request.throttle_extra_replies = None  # type: ignore[attr-defined]
        try:
            pipe = RoundTrip()
            for scope, ident in scopes:
                limit, period = self.get_rate(scope)
                window = int(now // period)
                key = f"{prefix}:throttle:{scope}:{ident}:{window}"
                pipe.incr(key)
                pipe.expire(key, period + 1)
                windows.append((limit, period, window))
            self.stage_extra_commands(pipe, request, view)
            if not len(pipe):
                return True
            replies = pipe.send()
        except RedisError:
            logger.warning("throttle store unreachable; letting the request through")
            return True
        counts = replies[: 2 * len(windows) : 2]
        request.throttle_extra_replies = replies[2 * len(windows) :]  # type: ignore[attr-defined]
        waits = [
            (window + 1) * period - now
            for (limit, period, window), count in zip(windows, counts, strict=True)
            if count > limit
        ]
        if waits:
            self.wait_seconds = max(waits)
            return False
        return True

    def wait(self) -> float | None:
        return self.wait_seconds


def throttle_extra_replies(request: Request) -> list[Any] | None:
    """The replies to the commands the view's throttle staged (`stage_extra_commands`), in order;
    None when Redis could not be reached (or no throttle ran): the view reads on its own then."""
    return getattr(request, "throttle_extra_replies", None)


class RequestThrottle(FixedWindowThrottle):
    """The default: per user (or per IP before login), plus the stricter write limit for
    unsafe methods, counted together in one round trip."""

    def get_scopes(self, request: Request, view: "APIView") -> list[tuple[str, str]]:
        if request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
            scopes = [("user", ident)]
        else:
            ident = f"ip:{self.get_ident(request)}"
            scopes = [("anon", ident)]
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            scopes.append(("writes", ident))
        return scopes


class AnonBurstThrottle(FixedWindowThrottle):
    scope = "anon"

    def get_ident_key(self, request: Request, view: "APIView") -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return f"ip:{self.get_ident(request)}"


class UserBurstThrottle(FixedWindowThrottle):
    scope = "user"

    def get_ident_key(self, request: Request, view: "APIView") -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return f"user:{request.user.pk}"


class WriteThrottle(FixedWindowThrottle):
    """A stricter limit on writes, per user (or per IP before login)."""

    scope = "writes"

    def get_ident_key(self, request: Request, view: "APIView") -> str | None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return f"ip:{self.get_ident(request)}"


class AuthThrottle(FixedWindowThrottle):
    """Registration and login, per client IP: slows down password guessing and sign-up floods."""

    scope = "auth"

    def get_ident_key(self, request: Request, view: "APIView") -> str | None:
        return f"ip:{self.get_ident(request)}"
