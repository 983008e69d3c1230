"""gunicorn settings for the web tier: `gunicorn -c python:config.gunicorn config.wsgi:application`.

Bind address, workers and timeouts stay on the command line (which overrides anything here).

Logs: gunicorn's own lines ("Booting worker", worker timeouts and crashes) and its access log,
when one is asked for, go through Django's LOGGING: the same format (JSON lines in production)
and the same fields. The access line is written before the response is closed, so it carries
the request's id.

Metrics: with PROMETHEUS_MULTIPROC_DIR set, every worker writes its metrics to files in that
directory and GET /metrics, answered by any one worker, adds up all of them (core.metrics). The
directory belongs to this master alone (one per host, not shared with the Celery worker's): it
is cleared when the master starts, and a worker that exits has its live-gauge files removed.
"""

import os
from typing import Any

from django.conf import settings
from gunicorn import glogging
from prometheus_client import multiprocess

from core.metrics.multiprocess import multiprocess_directory, multiprocess_files_clear

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# No handlers of their own: they propagate to the root logger's handler. No level either, so
# --log-level still sets gunicorn.error's.
_GUNICORN_LOGGERS = {
    "gunicorn.error": {"handlers": [], "propagate": True},
    "gunicorn.access": {"handlers": [], "propagate": True},
}
logconfig_dict = {
    **settings.LOGGING,
    "loggers": {**settings.LOGGING["loggers"], **_GUNICORN_LOGGERS},
}


class Logger(glogging.Logger):
    """gunicorn's logger, with an access log only when one is asked for (--access-logfile).

    A logging configuration alone turns gunicorn's access log on, and building an access line
    costs every request some microseconds; the API's hot paths are measured without it.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.cfg.accesslog is not None:
            super().access(resp, req, environ, request_time)


logger_class = "config.gunicorn.Logger"


def on_starting(server: Any) -> None:
    directory = multiprocess_directory()
    if directory:
        # Before any worker starts: values of a previous run must not be added to this one's.
        multiprocess_files_clear(directory)


def child_exit(server: Any, worker: Any) -> None:
    directory = multiprocess_directory()
    if directory:
        multiprocess.mark_process_dead(worker.pid, directory)
