"""core.redis_round_trip: commands staged by redis-py's methods, one send, Redis's own replies."""

import uuid

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.exceptions import ResponseError

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
