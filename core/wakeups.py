"""Waking a higher app's consumer after a lower app commits, without importing it.

STYLE: the interaction tables are the event log; a consumer keeps a watermark of what it has
processed (core.eventlog). A lower app calls `wake(topic)` in its transaction; settings map the
topic to task names (WAKE_ON_COMMIT), each queued by name after commit (core.enqueue), so
`engagement` never imports `rewards`. At most one wake-up per task is queued at a time (a Redis
flag the consumer clears when it starts: `woken`). A lost wake-up (Redis or the broker down)
only delays: each consumer also runs on a periodic sweep.
"""

from django.conf import settings

from core.enqueue import enqueue_flag_clear, enqueue_on_commit

FLAG_TTL = 30


def flag_key(task_name: str) -> str:
    return f"wake:{task_name}"


def wake(topic: str) -> None:
    """Queue the topic's consumers once the current transaction commits."""
    for task_name in settings.WAKE_ON_COMMIT.get(topic, ()):
        enqueue_on_commit(
            task_name,
            countdown=settings.WAKE_DEBOUNCE_SECONDS,
            once_key=flag_key(task_name),
            once_ttl=FLAG_TTL,
        )


def woken(task_name: str) -> None:
    """Called by a consumer when it starts: commits after this queue the next run."""
    enqueue_flag_clear(flag_key(task_name))
