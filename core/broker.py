"""How a Celery worker comes back to the broker after an outage.

Celery's consumer reconnects with kombu's default backoff: 2 s, then 2 s more after each failed
try, up to 30 s between tries. After a 10-second Redis outage the next try is 8 s after Redis is
back; after a minute, up to 16 s. Live tallies and grants must catch up within 10 s of the
broker's return, so this consumer retries every second, then every 2 s: one connection attempt
per worker every 2 s while the broker is down costs nothing worth saving.
"""

from functools import partial
from typing import Any

from celery.worker.consumer import Consumer

RECONNECT_INTERVALS = {"interval_start": 1, "interval_step": 1, "interval_max": 2}


class PromptlyReconnectingConsumer(Consumer):
    """The stock consumer, retrying the broker connection every 1-2 s instead of up to 30 s."""

    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = partial(conn.ensure_connection, **RECONNECT_INTERVALS)
        return super().ensure_connected(conn)
