"""Waking a higher app's consumer after a lower app commits, without importing it.

STYLE: the interaction tables are the event log; a consumer keeps a watermark of what it has
processed. A lower app calls `wake(topic)` after commit; settings map the topic to task names
(sent by name, so `engagement` never imports `rewards`). At most one wake-up per topic is queued
at a time (a Redis flag the consumer clears when it starts). A lost wake-up (Redis or the broker
down) only delays: each consumer also runs on a periodic sweep.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

FLAG_TTL = 30


def flag_key(task_name: str) -> str:
    return f"wake:{task_name}"


def wake(topic: str) -> None:
    """Queue the topic's consumers once the current transaction commits."""
    transaction.on_commit(lambda: _send(topic))


def _send(topic: str) -> None:
    from config.celery import app

    for task_name in settings.WAKE_ON_COMMIT.get(topic, ()):
        try:
            if cache.add(flag_key(task_name), 1, FLAG_TTL):
                app.send_task(task_name, countdown=settings.WAKE_DEBOUNCE_SECONDS)
        except Exception:
            cache.delete(flag_key(task_name))
            logger.warning("could not wake %s; its sweep will run it", task_name)


def woken(task_name: str) -> None:
    """Called by a consumer when it starts: commits after this queue the next run."""
    cache.delete(flag_key(task_name))
