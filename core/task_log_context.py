"""Carries the request id into the tasks a request enqueues, and names the task on worker lines.

Connected by importing this module (config/celery.py does), in web processes and workers alike:
- before_task_publish adds a `request_id` header to every task message sent while a request id
  is current: `.delay`, `apply_async`, `delay_on_commit` and `app.send_task` by name all publish
  through it. In protocol 2 the header travels with the message and comes back as
  `task.request.request_id` in the worker.
- task_prerun makes that id (and the task's id and name) the log context of the task's run;
  task_postrun restores the previous context. A task enqueued by a task therefore inherits the
  id of the request that started the chain.
- setup_logging keeps Celery from installing its own handlers and format on the root logger:
  workers and beat log through Django's LOGGING (JSON lines in production), with the same
  LogContextFilter. `--loglevel` is then ignored; LOG_LEVEL sets the level everywhere.
"""

import logging
from typing import Any

from celery import Task
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun

from core.log_context import (
    LogContext,
    current_log_context,
    current_request_id,
    reset_log_context,
    set_log_context,
)

logger = logging.getLogger(__name__)

HEADER = "request_id"
# Where task_prerun keeps the token task_postrun needs: on the task's request context, which
# Celery pushes for this run alone (nested eager calls each get their own).
_TOKEN_ATTRIBUTE = "chorus_log_context_token"


@before_task_publish.connect(dispatch_uid="core.task_log_context.add_request_id")
def _add_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = current_request_id()
    if request_id is not None and headers is not None:
        headers.setdefault(HEADER, request_id)


@task_prerun.connect(dispatch_uid="core.task_log_context.enter_task")
def _enter_task(task_id: str, task: Task, **kwargs: Any) -> None:
    request = task.request
    request_id = getattr(request, HEADER, None)
    if request_id is None and request.is_eager:
        # Run in-process (apply()): nothing was published; it belongs to the caller's request.
        request_id = current_log_context().request_id
    token = set_log_context(LogContext(request_id=request_id, task_id=task_id, task_name=task.name))
    setattr(request, _TOKEN_ATTRIBUTE, token)
    if request_id is not None:
        # Celery's own "received" line is written before the task has a context; this one says,
        # with the request's id, that the work the request asked for has started.
        logger.info("Task %s[%s] started for request %s", task.name, task_id, request_id)


@task_postrun.connect(dispatch_uid="core.task_log_context.leave_task")
def _leave_task(task: Task, **kwargs: Any) -> None:
    token = getattr(task.request, _TOKEN_ATTRIBUTE, None)
    if token is not None:
        reset_log_context(token)


@setup_logging.connect(dispatch_uid="core.task_log_context.use_django_logging")
def _use_django_logging(**kwargs: Any) -> None:
    # A receiver of this signal tells Celery that logging is taken care of. Django's LOGGING is
    # applied again here rather than assumed: this runs before or after django.setup()
    # depending on the command (worker, beat, shell).
    from django.conf import settings
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
