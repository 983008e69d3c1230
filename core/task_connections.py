"""Celery workers keep their database connections from task to task, as web processes keep
theirs from request to request.

Celery's Django fixup closes every database connection before and after each task unless
CELERY_DB_REUSE_MAX is set, so every task opened a new PostgreSQL connection: a backend forked,
authenticated and warmed up for a task that often runs one statement (the tallies worker does so
several times a second while votes arrive; docs/benchmarks.md). The setting (config/settings)
makes the fixup close them only every CELERY_DB_REUSE_MAX tasks; around every task Django's own
rule for requests runs instead (`close_old_connections`): a connection older than CONN_MAX_AGE,
or left unusable by an error, is closed, and the next query checks the connection first (the
health check of core/postgres/base.py), so a database restart costs no task a failure.

Connected by importing this module (config/celery.py does). Tasks run eagerly (in a caller's
process, maybe in its transaction) are left alone, as the fixup leaves them.
"""

from typing import Any

from celery import Task
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections


def _around_task(task: Task | None = None, **kwargs: Any) -> None:
    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


task_prerun.connect(_around_task, dispatch_uid="core.task_connections.before_task", weak=False)
task_postrun.connect(_around_task, dispatch_uid="core.task_connections.after_task", weak=False)
