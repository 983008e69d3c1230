"""Several Redis commands in one round trip, at the cost of the round trip alone.

The hot paths make one Redis round trip per request: the rate counters, plus what the view
needs from Redis on the way (a results cache read, a live-tally mark). redis-py's pipeline
spends more CPU on its own machinery (retry wrapper, response callbacks, per-command
bookkeeping, observability hooks) than on packing and parsing (docs/benchmarks.md, "What a
request costs"). Here the commands are staged by redis-py's own command methods (`incr`,
`expire`, `mget`, `zadd`, `set`: the same argument building as a pipeline's), packed by the
connection, written in one send and read back in order.

Replies are Redis's own, without redis-py's response callbacks: `SET … NX` answers b"OK" or
None, `EXPIRE` 1 or 0. Each thread keeps one connection, made with the cache pool's settings, for
its round trips (checking one out of the pool and back in costs redis-py more than packing the
commands does); it closes when the thread ends, and a forked process makes a new one. A
connection error is retried once on a fresh connection (a Redis restart leaves connections
dead); any other error drops the connection (its remaining replies would be read by the next
round trip) and is raised.
"""

import os
import threading
from typing import Any, Literal

from django_redis import get_redis_connection
from redis.commands.core import CoreCommands
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

_held = threading.local()


def _connection(alias: str) -> AbstractConnection:
    """This thread's connection for round trips, from the alias's current pool (a new pool, as
    after a settings change, or a forked process gets a new connection)."""
    pool = get_redis_connection(alias).connection_pool
    held: dict[str, tuple[Any, int, AbstractConnection]] = _held.__dict__.setdefault("by_alias", {})
    current = held.get(alias)
    if current is not None and current[0] is pool and current[1] == os.getpid():
        return current[2]
    # (made like the pool's own, but not the pool's: it lives and closes with the thread)
    connection = pool.connection_class(**pool.connection_kwargs)
    held[alias] = (pool, os.getpid(), connection)
    return connection


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
        connection = _connection(alias)
        for attempt in (1, 2):
            try:
                connection.send_packed_command(connection.pack_commands(self.commands))
                return [connection.read_response() for _ in self.commands]
            except RedisConnectionError:
                connection.disconnect()  # the next send connects again
                if attempt == 2:
                    raise
            except BaseException:
                connection.disconnect()
                raise
        raise AssertionError("unreachable")
