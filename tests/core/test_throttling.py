"""The fixed-window throttles against the real Redis (core/throttling.py)."""

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django_redis import get_redis_connection
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from core.throttling import (
    AnonBurstThrottle,
    AuthThrottle,
    FixedWindowThrottle,
    RequestThrottle,
    UserBurstThrottle,
    WriteThrottle,
    parse_rate,
)
from engagement.models import User
from tests.factories import UserFactory

DAY = 86400
VIEW = APIView()


def _request(
    method: str = "GET", user: User | None = None, remote_addr: str = "10.0.0.1"
) -> Request:
    django_request = APIRequestFactory().generic(
        method, "/api/v1/anything", REMOTE_ADDR=remote_addr
    )
    request = Request(django_request)
    request.user = user if user is not None else AnonymousUser()
    return request


def _throttle_keys() -> dict[str, int]:
    """This test process's throttle counters in Redis: {key: count}."""
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    connection = get_redis_connection("default")
    keys = sorted(key.decode() for key in connection.scan_iter(match=f"{prefix}:throttle:*"))
    return {key.removeprefix(f"{prefix}:throttle:"): int(connection.get(key)) for key in keys}


def _window(period: int) -> int:
    return int(time.time() // period)


def _allowed(throttle: FixedWindowThrottle, request: Request, times: int) -> list[bool]:
    return [throttle.allow_request(request, VIEW) for _ in range(times)]


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("120/min", (120, 60)),
        ("5/s", (5, 1)),
        ("5/sec", (5, 1)),
        ("10/hour", (10, 3600)),
        ("10/h", (10, 3600)),
        ("1/day", (1, DAY)),
        ("3/ d", (3, DAY)),
        ("7/M", (7, 60)),
    ],
)
def test_parse_rate(rate: str, parsed: tuple[int, int]) -> None:
    assert parse_rate(rate) == parsed


@pytest.mark.django_db
def test_a_user_is_refused_after_the_limit_within_one_window(
    throttle_rates: Callable[..., None],
) -> None:
    throttle_rates(user="3/day")
    user = UserFactory.create()
    throttle = UserBurstThrottle()

    allowed = _allowed(throttle, _request(user=user), 5)

    assert allowed == [True, True, True, False, False]
    wait = throttle.wait()
    assert wait is not None
    assert 0 < wait <= DAY
    assert _throttle_keys() == {f"user:user:{user.pk}:{_window(DAY)}": 5}


@pytest.mark.django_db
def test_counters_expire_after_their_window(throttle_rates: Callable[..., None]) -> None:
    throttle_rates(user="3/hour")
    user = UserFactory.create()
    UserBurstThrottle().allow_request(_request(user=user), VIEW)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    connection = get_redis_connection("default")
    (key,) = connection.scan_iter(match=f"{prefix}:throttle:*")

    ttl = connection.ttl(key)

    assert 0 < ttl <= 3600 + 1


@pytest.mark.django_db
def test_each_user_has_their_own_counter(throttle_rates: Callable[..., None]) -> None:
    throttle_rates(user="2/day")
    alice, bob = UserFactory.create(), UserFactory.create()
    throttle = UserBurstThrottle()

    assert _allowed(throttle, _request(user=alice), 3) == [True, True, False]
    assert _allowed(throttle, _request(user=bob), 2) == [True, True]


@pytest.mark.django_db
def test_a_new_throttle_instance_sees_the_same_counter(
    throttle_rates: Callable[..., None],
) -> None:
    # every request gets a fresh throttle object (as in any web process): state lives in Redis
    throttle_rates(user="2/day")
    user = UserFactory.create()

    results = [UserBurstThrottle().allow_request(_request(user=user), VIEW) for _ in range(3)]

    assert results == [True, True, False]


@pytest.mark.django_db
def test_the_user_throttle_ignores_anonymous_and_the_anon_throttle_ignores_users(
    throttle_rates: Callable[..., None],
) -> None:
    throttle_rates(user="1/day", anon="1/day")
    user = UserFactory.create()

    assert _allowed(UserBurstThrottle(), _request(), 3) == [True, True, True]
    assert _allowed(AnonBurstThrottle(), _request(user=user), 3) == [True, True, True]
    assert _throttle_keys() == {}


def test_the_anon_throttle_counts_per_ip(throttle_rates: Callable[..., None]) -> None:
    throttle_rates(anon="2/day")
    throttle = AnonBurstThrottle()

    first_ip = _allowed(throttle, _request(remote_addr="10.0.0.1"), 3)
    second_ip = _allowed(throttle, _request(remote_addr="10.0.0.2"), 2)

    assert first_ip == [True, True, False]
    assert second_ip == [True, True]
    window = _window(DAY)
    assert _throttle_keys() == {
        f"anon:ip:10.0.0.1:{window}": 3,
        f"anon:ip:10.0.0.2:{window}": 2,
    }


@pytest.mark.django_db
def test_the_write_throttle_counts_only_writes(throttle_rates: Callable[..., None]) -> None:
    throttle_rates(writes="2/day")
    user = UserFactory.create()
    throttle = WriteThrottle()

    reads = [
        throttle.allow_request(_request(method, user=user), VIEW)
        for method in ("GET", "HEAD", "OPTIONS") * 3
    ]
    writes = [
        throttle.allow_request(_request(method, user=user), VIEW)
        for method in ("POST", "PUT", "DELETE", "PATCH")
    ]

    assert reads == [True] * 9
    assert writes == [True, True, False, False]
    assert _throttle_keys() == {f"writes:user:{user.pk}:{_window(DAY)}": 4}


def test_the_write_throttle_counts_anonymous_writes_per_ip(
    throttle_rates: Callable[..., None],
) -> None:
    throttle_rates(writes="1/day")
    throttle = WriteThrottle()

    assert _allowed(throttle, _request("POST", remote_addr="10.0.0.9"), 2) == [True, False]
    assert _throttle_keys() == {f"writes:ip:10.0.0.9:{_window(DAY)}": 2}


@pytest.mark.django_db
def test_the_auth_throttle_counts_per_ip_whoever_is_logged_in(
    throttle_rates: Callable[..., None],
) -> None:
    throttle_rates(auth="2/day")
    throttle = AuthThrottle()

    results = [
        throttle.allow_request(
            _request("POST", user=UserFactory.create(), remote_addr="10.0.0.5"), VIEW
        )
        for _ in range(3)
    ]

    assert results == [True, True, False]
    assert _throttle_keys() == {f"auth:ip:10.0.0.5:{_window(DAY)}": 3}


@pytest.mark.django_db
def test_scopes_have_separate_counters(throttle_rates: Callable[..., None]) -> None:
    throttle_rates(user="1/day", writes="1/day")
    user = UserFactory.create()
    request = _request("POST", user=user)

    assert UserBurstThrottle().allow_request(request, VIEW) is True
    assert WriteThrottle().allow_request(request, VIEW) is True
    assert UserBurstThrottle().allow_request(request, VIEW) is False
    assert WriteThrottle().allow_request(request, VIEW) is False


def test_keys_carry_this_test_process_prefix(throttle_rates: Callable[..., None]) -> None:
    # xdist workers share one Redis; each one's counters live under its own prefix
    throttle_rates(anon="100/day")
    AnonBurstThrottle().allow_request(_request(), VIEW)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    connection = get_redis_connection("default")

    keys = [key.decode() for key in connection.scan_iter(match="*:throttle:*")]

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    assert prefix == f"test-{worker}"
    assert f"{prefix}:throttle:anon:ip:10.0.0.1:{_window(DAY)}" in keys


def test_an_unreachable_redis_lets_requests_through(
    settings: Any, throttle_rates: Callable[..., None]
) -> None:
    # rate limits protect; an outage of the cache must not take the API down
    throttle_rates(anon="1/day")
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    }
    throttle = AnonBurstThrottle()

    assert _allowed(throttle, _request(), 3) == [True, True, True]
    assert throttle.wait() is None


@pytest.mark.django_db
def test_the_default_throttle_counts_user_and_write_windows_together(
    throttle_rates: Callable[..., None],
) -> None:
    # given 3 requests a day per user, of which 2 writes
    throttle_rates(user="3/day", writes="2/day")
    user = UserFactory.create()
    throttle = RequestThrottle()

    # then two writes pass, the third is refused by the write window, and a read is then
    # refused by the user window (the refused write counted there too)
    assert throttle.allow_request(_request(user=user, method="POST"), VIEW) is True
    assert throttle.allow_request(_request(user=user, method="POST"), VIEW) is True
    assert throttle.allow_request(_request(user=user, method="POST"), VIEW) is False
    assert 0 < (throttle.wait() or 0) <= 86400
    assert throttle.allow_request(_request(user=user, method="GET"), VIEW) is False
