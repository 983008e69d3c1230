"""The one way to queue a task: by its name, after commit, at most one queued at a time.

STYLE: work for later is enqueued after commit, never inside an open transaction, and by task
NAME (`"polls.tasks.finalize_sticker"`), so a service never imports a tasks module (the tasks
import the services) and `core` imports neither the apps nor `config`: the task goes through
Celery's current app, which `config.celery` makes the default of every thread. CELERY_TASK_ROUTES
picks the queue from the name, as for any other send.

With `once_key`, a Redis flag (SET NX with a TTL) keeps at most one such task queued: commits
while it is set queue nothing more, and the task clears it when it starts
(`enqueue_flag_clear`), so the commits after that queue the next run. A flag whose task was
lost expires after `once_ttl`; a caller may also leave it to expire, as a "not again within
N seconds" throttle.

Nothing here raises into the request: with Redis or the broker unreachable the task is not
queued, a warning is logged, and the periodic sweep that every such task has does the work.
"""

import logging
from functools import partial
from typing import Any

from celery import current_app
from django.core.cache import cache
from django.db import transaction
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

# Long enough to outlast a debounce countdown and a busy queue; short enough that a flag whose
# task was lost stops holding back new ones soon after the sweep has run it.
ONCE_TTL = 30


def enqueue_on_commit(
    task_name: str,
    *args: Any,
    countdown: float | None = None,
    once_key: str | None = None,
    once_ttl: int = ONCE_TTL,
) -> None:
    """Queue the task `task_name` with `args` once the current transaction commits.

    Nothing is sent if it rolls back. Outside a transaction (autocommit) it is sent now.
    """
    transaction.on_commit(
        partial(
            enqueue_now, task_name, *args, countdown=countdown, once_key=once_key, once_ttl=once_ttl
        )
    )


def enqueue_now(
    task_name: str,
    *args: Any,
    countdown: float | None = None,
    once_key: str | None = None,
    once_ttl: int = ONCE_TTL,
) -> bool:
    """Queue the task now (for callers that are not in a transaction). True when it was sent."""
    if once_key is not None:
        try:
            claimed = get_redis_connection("default").set(
                enqueue_flag_key(once_key), 1, nx=True, ex=once_ttl
            )
        except Exception:
            logger.warning("Redis unreachable: %s not queued; its sweep will run it", task_name)
            return False
        if not claimed:
            return False  # one is queued already
    return task_send(task_name, *args, countdown=countdown, once_key=once_key)


def task_send(
    task_name: str, *args: Any, countdown: float | None = None, once_key: str | None = None
) -> bool:
    """Publish the task by name now; True when the broker took it.

    For a caller that set the flag `once_key` itself (on a Redis round trip it makes anyway):
    when the broker is unreachable the flag is cleared, so the next caller tries again.
    """
    try:
        current_app.send_task(task_name, args=args, countdown=countdown)
    except Exception:
        logger.warning("broker unreachable: %s not queued; its sweep will run it", task_name)
        if once_key is not None:
            enqueue_flag_clear(once_key)
        return False
    return True


def enqueue_flag_key(once_key: str) -> str:
    """The Redis key of a flag (in the cache's namespace), for a caller's own pipeline."""
    return cache.make_key(once_key)


def enqueue_flag_clear(once_key: str) -> None:
    """Clear a flag (the task does, when it starts): the next commit queues the next run."""
    try:
        get_redis_connection("default").delete(enqueue_flag_key(once_key))
    except Exception:  # it expires after its TTL
        logger.warning("Redis unreachable: could not clear the flag %s", once_key)
