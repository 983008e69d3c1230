"""Waking a higher app's consumer after a lower app commits, without importing it.

STYLE: the interaction tables are the event log; a consumer keeps a watermark of what it has
processed (core.eventlog). A lower app calls `wake(topic)` in its transaction; settings map the
topic to task names (WAKE_ON_COMMIT), each queued by name after commit (core.enqueue), so
`engagement` never imports `rewards`. At most one wake-up per task is queued at a time (a Redis
flag the consumer clears when it starts: `woken`). A lost wake-up (Redis or the broker down)
only delays: each consumer also runs on a periodic sweep.
"""

import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django_redis import get_redis_connection

from core.enqueue import enqueue_flag_clear, enqueue_flag_key, task_send

logger = logging.getLogger(__name__)

FLAG_TTL = 30


def flag_key(task_name: str) -> str:
    return f"wake:{task_name}"


def wake(topic: str) -> None:
    """Queue the topic's consumers once the current transaction commits."""
    task_names = tuple(settings.WAKE_ON_COMMIT.get(topic, ()))
    if task_names:
        transaction.on_commit(partial(_wake_now, task_names))


def _wake_now(task_names: tuple[str, ...]) -> None:
    # The flags of all the topic's consumers in one Redis round trip (a like wakes four), then
    # a send for each consumer that had none queued. (core.enqueue's once_key, batched.)
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        for task_name in task_names:
            pipe.set(enqueue_flag_key(flag_key(task_name)), 1, nx=True, ex=FLAG_TTL)
        claimed = pipe.execute()
    except Exception:
        logger.warning("Redis unreachable: %s not woken; their sweeps will run them", task_names)
        return
    for task_name, was_set in zip(task_names, claimed, strict=True):
        if was_set:
            task_send(
                task_name, countdown=settings.WAKE_DEBOUNCE_SECONDS, once_key=flag_key(task_name)
            )


def woken(task_name: str) -> None:
    """Called by a consumer when it starts: commits after this queue the next run."""
    enqueue_flag_clear(flag_key(task_name))
