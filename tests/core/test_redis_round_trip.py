"""core.redis_round_trip: commands staged by redis-py's methods, one send, Redis's own replies."""

import os
import uuid

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.exceptions import ResponseError

from core.metrics.timing import RequestTimes, request_times
from core.redis_round_trip import RoundTrip


def _key() -> str:
    return cache.make_key(f"round-trip:{uuid.uuid4().hex}")


def test_the_replies_come_back_in_the_order_of_the_commands() -> None:
    counter, flag, marks = _key(), _key(), _key()
    trip = RoundTrip()
    trip.incr(counter)
    trip.expire(counter, 60)
    trip.set(flag, 1, nx=True, ex=60)
    trip.set(flag, 1, nx=True, ex=60)
    trip.zadd(marks, {"7": 1.5}, gt=True)
    trip.mget([counter, flag, _key()])
    assert len(trip) == 6
    assert trip.send() == [1, 1, b"OK", None, 1, [b"1", b"1", None]]
    redis = get_redis_connection("default")
    assert 0 < redis.ttl(counter) <= 60
    assert redis.zscore(marks, "7") == 1.5


def test_nothing_staged_sends_nothing() -> None:
    assert RoundTrip().send() == []


def test_an_error_reply_is_raised_and_the_connection_is_not_reused_half_read() -> None:
    text = _key()
    get_redis_connection("default").set(text, "not a number")
    trip = RoundTrip()
    trip.incr(text)
    trip.incr(_key())
    with pytest.raises(ResponseError):
        trip.send()
    # the next round trip reads its own replies, not the ones left of the failed one
    again = RoundTrip()
    counter = _key()
    again.incr(counter)
    again.incr(counter)
    assert again.send() == [1, 2]


def test_a_dropped_connection_is_replaced_once() -> None:
    # the thread's round-trip connection is closed by the server (as by a restart)
    ask = RoundTrip()
    ask.client_id()
    [client_id] = ask.send()
    assert get_redis_connection("default").client_kill_filter(_id=client_id) == 1
    trip = RoundTrip()
    counter = _key()
    trip.incr(counter)
    assert trip.send() == [1]
    again = RoundTrip()
    again.client_id()
    assert again.send() != [client_id]  # a new connection


def _client_id() -> int:
    ask = RoundTrip()
    ask.client_id()
    [client_id] = ask.send()
    return client_id


def test_the_thread_keeps_its_connection_until_the_cache_settings_change(settings) -> None:
    first = _client_id()
    assert _client_id() == first  # one connection per thread, reused
    settings.CACHES = {**settings.CACHES}  # (a settings change: the cache may point elsewhere)
    changed = _client_id()
    assert changed != first
    assert _client_id() == changed


def test_a_forked_child_makes_its_own_connection() -> None:
    parent = _client_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id, or -1 on any error
        try:
            os.write(write, str(_client_id()).encode())
        except BaseException:
            os.write(write, b"-1")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as reply:
        child = int(reply.read())
    os.waitpid(pid, 0)
    assert child not in (-1, parent)
    assert _client_id() == parent  # the parent's connection is untouched


def test_the_round_trip_adds_its_time_to_the_request() -> None:
    times = RequestTimes()
    token = request_times.set(times)
    try:
        trip = RoundTrip()
        # BLPOP on an empty list waits its timeout out on the server: a known round trip.
        trip.blpop([_key()], 0.05)
        trip.incr(_key())
        assert trip.send() == [None, 1]
    finally:
        request_times.reset(token)
    assert 0.05 <= times.redis < 5
