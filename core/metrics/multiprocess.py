"""prometheus-client's multiprocess directory: where it is, and clearing what dead processes left.

No metric is defined here, so the gunicorn master can import it without creating any.
"""

import glob
import os


def multiprocess_directory() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, or None: metrics then live in each process's own registry."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def multiprocess_files_clear(directory: str, *, keep_pid: int | None = None) -> int:
    """Remove the value files of earlier processes (all but `keep_pid`'s); how many.

    Called by the process manager that owns the directory when it starts (the gunicorn master,
    the Celery worker's main process) before any child writes: files of a previous run would
    otherwise be added to this run's figures on every scrape, and accumulate. One directory per
    process manager and host, never shared: another manager's live files would be removed too.
    """
    os.makedirs(directory, exist_ok=True)
    removed = 0
    for path in glob.glob(os.path.join(directory, "*.db")):
        stem = os.path.basename(path)[: -len(".db")]
        if keep_pid is not None and stem.rsplit("_", 1)[-1] == str(keep_pid):
            continue
        os.remove(path)
        removed += 1
    return removed
