"""Django's PostgreSQL backend, whose per-request health check costs no round trip.

With CONN_HEALTH_CHECKS, Django checks a persistent connection before a request's first query
by running `SELECT 1`: one more round trip on every request that touches the database (on an
authenticated read, as many as the request's own work; docs/benchmarks.md). A connection the
server has dropped (a restart, a terminated backend, an idle timeout) has something to read on
its socket: PostgreSQL's termination notice or the end of the stream. An idle connection in good
health has nothing to read (no LISTEN here). So the socket is polled first, without waiting, and
`SELECT 1` runs only when something is there (or the connection is not idle): the dead
connection is still found and replaced before the request uses it, as redis-py's connection pool
does with its `can_read` check. A server that vanished without closing (no FIN) is found by
neither check before the query itself fails; that failure is answered 503 and the connection is
dropped at the end of the request (Django's errors_occurred), as before.
"""

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed or raw.broken:
            return False
        if raw.info.transaction_status == TransactionStatus.IDLE:
            # (poll, not select: select refuses descriptors past 1024)
            socket = select.poll()
            socket.register(raw.pgconn.socket, select.POLLIN)
            if not socket.poll(0):
                return True
        return bool(super().is_usable())
