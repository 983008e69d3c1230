"""Several Redis commands in one round trip, at the cost of the round trip alone.

The hot paths make one Redis round trip per request: the rate counters, plus what the view
needs from Redis on the way (a results cache read, a live-tally mark). redis-py's pipeline
spends more CPU on its own machinery (retry wrapper, response callbacks, per-command
bookkeeping, observability hooks) than on packing and parsing (docs/benchmarks.md, "What a
request costs"). Here the commands are staged by redis-py's own command methods (`incr`,
`expire`, `mget`, `zadd`, `set`: the same argument building as a pipeline's), packed by the
connection, written in one send and read back in order, on a connection of the cache's pool.

Replies are Redis's own, without redis-py's response callbacks: `SET … NX` answers b"OK" or
None, `EXPIRE` 1 or 0. A connection error is retried once on a fresh connection (a Redis
restart leaves the pool's connections dead); any other error drops the connection (its
remaining replies would be read by the next user) and is raised.
"""

from typing import Any, Literal

from django_redis import get_redis_connection
from redis.commands.core import CoreCommands
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError


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
        pool = get_redis_connection(alias).connection_pool
        connection = pool.get_connection()
        try:
            for attempt in (1, 2):
                try:
                    connection.send_packed_command(connection.pack_commands(self.commands))
                    return [connection.read_response() for _ in self.commands]
                except RedisConnectionError:
                    connection.disconnect()
                    if attempt == 2:
                        raise
                except RedisError:
                    connection.disconnect()
                    raise
            raise AssertionError("unreachable")
        finally:
            pool.release(connection)
