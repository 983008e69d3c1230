"""gunicorn settings for the web tier: `gunicorn -c config/gunicorn.py config.wsgi:application`.

Only the hooks that Prometheus's multiprocess mode needs live here; bind address, workers and
timeouts stay on the command line. With PROMETHEUS_MULTIPROC_DIR set, every worker writes its
metrics to files in that directory and GET /metrics, answered by any one worker, adds up all of
them (core.metrics). The directory belongs to this master alone (one per host, not shared with
the Celery worker's): it is cleared when the master starts, and a worker that exits has its
live-gauge files removed.
"""

from typing import Any

from prometheus_client import multiprocess

from core.metrics.multiprocess import multiprocess_directory, multiprocess_files_clear


def on_starting(server: Any) -> None:
    directory = multiprocess_directory()
    if directory:
        # Before any worker starts: values of a previous run must not be added to this one's.
        multiprocess_files_clear(directory)


def child_exit(server: Any, worker: Any) -> None:
    directory = multiprocess_directory()
    if directory:
        multiprocess.mark_process_dead(worker.pid, directory)
