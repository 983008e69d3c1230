"""Celery task metrics, and the worker's own exporter.

Connected by importing this module (config/celery.py does). In a worker the signal handlers
count every task that ends and time its run; with prefork they run in the pool's children,
which write to the multiprocess directory (PROMETHEUS_MULTIPROC_DIR), and the worker's main
process serves the sum of all of them over HTTP when CELERY_METRICS_PORT is set (bound to
CELERY_METRICS_BIND, 127.0.0.1 unless told otherwise). Many workers means many targets: one per
worker process tree, each with a directory of its own (see docs/observability.md).
"""

import logging
import os
from time import perf_counter
from typing import Any

from celery import Task
from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_revoked,
    worker_init,
    worker_process_shutdown,
)
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import mark_process_dead

from core.metrics.collectors import InProcessCollector
from core.metrics.families import CELERY_TASK_DURATION, CELERY_TASKS, MULTIPROCESS_DIRECTORY
from core.metrics.multiprocess import multiprocess_files_clear

logger = logging.getLogger(__name__)

# Task end states as task_postrun reports them. FAILURE is counted by task_failure instead:
# that signal also comes from the main process when a child is killed (hard time limit, lost
# worker), where no postrun follows.
_POSTRUN_STATES = {
    "SUCCESS": "succeeded",
    "RETRY": "retried",
    "IGNORED": "ignored",
    "REJECTED": "rejected",
}

# task id -> perf_counter() at prerun, in the process that runs the task.
_started: dict[str, float] = {}


def _queue_of(task: Any, request: Any = None) -> str:
    """The queue a task came from: its delivery's routing key (our queues are bound by name),
    else where the routes would send it."""
    delivery = getattr(request if request is not None else task.request, "delivery_info", None)
    queue = (delivery or {}).get("routing_key")
    if queue:
        return str(queue)
    try:
        return str(task.app.amqp.router.route({}, task.name)["queue"].name)
    except Exception:
        return "unknown"


@task_prerun.connect
def _task_started(task_id: str | None = None, **kwargs: Any) -> None:
    if task_id is not None:
        _started[task_id] = perf_counter()


@task_postrun.connect
def _task_ended(
    task_id: str | None = None, task: Task | None = None, state: str | None = None, **kwargs: Any
) -> None:
    started = _started.pop(task_id, None) if task_id is not None else None
    if task is None:
        return
    queue = _queue_of(task)
    if started is not None:
        CELERY_TASK_DURATION.labels(task.name, queue).observe(perf_counter() - started)
    outcome = _POSTRUN_STATES.get(state or "")
    if outcome is not None:
        CELERY_TASKS.labels(task.name, queue, outcome).inc()


@task_failure.connect
def _task_failed(sender: Task | None = None, **kwargs: Any) -> None:
    if sender is not None:
        CELERY_TASKS.labels(sender.name, _queue_of(sender), "failed").inc()


@task_revoked.connect
def _task_revoked(sender: Task | None = None, request: Any = None, **kwargs: Any) -> None:
    # Revoked, terminated, or expired before it ran (the beat schedule's `expires`).
    if sender is not None:
        CELERY_TASKS.labels(sender.name, _queue_of(sender, request), "revoked").inc()


@worker_process_shutdown.connect
def _pool_process_ended(pid: int | None = None, **kwargs: Any) -> None:
    if MULTIPROCESS_DIRECTORY and pid is not None:
        mark_process_dead(pid, MULTIPROCESS_DIRECTORY)


@worker_init.connect
def _exporter_start(**kwargs: Any) -> None:
    """In the worker's main process, before the pool starts: serve this worker's metrics."""
    port = os.environ.get("CELERY_METRICS_PORT")
    if not port:
        return
    bind = os.environ.get("CELERY_METRICS_BIND", "127.0.0.1")
    if MULTIPROCESS_DIRECTORY:
        multiprocess_files_clear(MULTIPROCESS_DIRECTORY, keep_pid=os.getpid())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(InProcessCollector(MULTIPROCESS_DIRECTORY, prefix="chorus_celery_"))
    else:
        # Only the tasks this process runs itself (solo or threads pool) are seen.
        registry = REGISTRY
    try:
        start_http_server(int(port), addr=bind, registry=registry)
    except OSError:
        logger.exception("could not serve worker metrics on %s:%s", bind, port)
        return
    logger.info("serving worker metrics on http://%s:%s/metrics", bind, port)
