"""The Celery application. Settings come from Django settings under the CELERY_ namespace."""

import os

from celery import Celery
from kombu import Queue

# Signal handlers: task metrics and the worker's exporter; request ids into tasks, and workers
# logging through LOGGING.
import core.metrics.celery
import core.task_log_context  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("chorus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in app.conf.task_queue_names]
app.autodiscover_tasks()
