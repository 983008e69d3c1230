"""The Celery application. Settings come from Django settings under the CELERY_ namespace."""

import os

from celery import Celery
from kombu import Queue

# Signal handlers: task metrics and the worker's exporter; request ids into tasks, and workers
# logging through LOGGING; database connections kept from task to task.
import core.metrics.celery
import core.task_connections
import core.task_log_context  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("chorus")
# The app of every thread (Celery's "current app" is per thread, falling back to the default):
# `core` sends tasks through `celery.current_app` without importing this module, also from
# threads other than the one that imported it.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in app.conf.task_queue_names]
app.autodiscover_tasks()
