"""Several Redis commands in one round trip, at the cost of the round trip alone.

The hot paths make one Redis round trip per request: the rate counters, plus what the view
needs from Redis on the way (a results cache read, a live-tally mark). redis-py's pipeline
spends more CPU on its own machinery (retry wrapper, response callbacks, per-command
bookkeeping, observability hooks) than on packing and parsing (docs/benchmarks.md, "What a
request costs"). Here the commands are staged by redis-py's own command methods (`incr`,
`expire`, `mget`, `zadd`, `set`: the same argument building as a pipeline's), packed by
hiredis in one call each (what redis-py's hiredis packer does, without its conversions of
bytearray and memoryview arguments, which these commands never take), written in one send and
read back in order.

Replies are Redis's own, without redis-py's response callbacks: `SET … NX` answers b"OK" or
None, `EXPIRE` 1 or 0. Each thread keeps one connection, made with the cache pool's settings, for
its round trips (checking one out of the pool and back in costs redis-py more than packing the
commands does); it is looked up once per cache configuration (a settings change or a fork makes
a new one) and closes when the thread ends. The round trip adds its time to the request's Redis
time once (core.metrics.timing), not once per reply. A connection error is retried once on a
fresh connection (a Redis restart leaves connections dead); any other error drops the connection
(its remaining replies would be read by the next round trip) and is raised.
"""

import os
import threading
from itertools import count
from typing import Any, Literal

import hiredis
from django.core.signals import setting_changed
from django.dispatch import receiver
from django_redis import get_redis_connection
from redis.commands.core import CoreCommands
from redis.connection import AbstractConnection, Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError

from core.metrics.timing import TimedRedisConnection, redis_timed

_held = threading.local()
# Which cache configuration the held connections were made for: a new one after a settings
# change (tests) or in a forked child (which must not share its parent's sockets).
_generations = count()
_generation = next(_generations)


def _new_generation(**kwargs: Any) -> None:
    global _generation
    if kwargs.get("setting", "CACHES") == "CACHES":
        _generation = next(_generations)


receiver(setting_changed)(_new_generation)
os.register_at_fork(after_in_child=_new_generation)


def _connection(alias: str) -> AbstractConnection:
    """This thread's connection for round trips to the alias's Redis."""
    held: dict[str, tuple[int, AbstractConnection]] = _held.__dict__.setdefault("by_alias", {})
    current = held.get(alias)
    if current is not None and current[0] == _generation:
        return current[1]
    if current is not None:
        current[1].disconnect()
    pool = get_redis_connection(alias).connection_pool
    # (made like the pool's own, but not the pool's: it lives and closes with the thread; the
    # round trip is timed as a whole, so not by the connection)
    connection_class = pool.connection_class
    if issubclass(connection_class, TimedRedisConnection):
        connection_class = Connection
    connection = connection_class(**pool.connection_kwargs)
    held[alias] = (_generation, connection)
    return connection


def _packed(command: tuple[Any, ...]) -> bytes:
    name = command[0]
    if " " in name:  # ("CLIENT ID",): sent as two words, as redis-py's packers do
        command = (*name.split(), *command[1:])
    return hiredis.pack_command(command)


class RoundTrip(CoreCommands):
    """Commands staged with redis-py's command methods, sent together by `send()`."""

    # What redis-py's typing asks of a synchronous client (its command methods' `self`), and
    # what its command mixins declare; nothing here dispatches events.
    _is_async_client: Literal[False] = False
    _event_dispatcher = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> "RoundTrip":
        self.commands.append(args)
        return self

    def __len__(self) -> int:
        return len(self.commands)

    def send(self, alias: str = "default") -> list[Any]:
        """The replies, in the order of the commands; RedisError when Redis cannot answer."""
        if not self.commands:
            return []
        try:
            packed = [b"".join([_packed(command) for command in self.commands])]
        except TypeError as error:  # (as redis-py reports an argument it cannot send)
            raise DataError(error) from error
        with redis_timed():
            for attempt in (1, 2):
                connection = _connection(alias)
                try:
                    connection.send_packed_command(packed)
                    return [connection.read_response() for _ in self.commands]
                except RedisConnectionError:
                    connection.disconnect()  # the next send connects again
                    if attempt == 2:
                        raise
                except BaseException:
                    connection.disconnect()
                    raise
        raise AssertionError("unreachable")
