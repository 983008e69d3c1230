"""The in-process metric families of every Chorus process.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn workers, Celery prefork children) prometheus-client
keeps each process's values in a memory-mapped file of that directory and a scrape adds them up
(MultiProcessCollector); without it (tests, `runserver`) they live in this process's default
registry. Either way a value belongs to one host: figures that are the same from every host
(queue depth, domain lag) are read from PostgreSQL and Redis at scrape time instead
(core.metrics.collectors).
"""

import os

from prometheus_client import Counter, Histogram, disable_created_metrics

from core.metrics.multiprocess import multiprocess_directory

# `_created` series (one more per labelled child) only in single-process mode: the two modes
# should show the same families.
disable_created_metrics()

MULTIPROCESS_DIRECTORY = multiprocess_directory()
if MULTIPROCESS_DIRECTORY:
    # prometheus-client opens its file on the first value; a missing directory would make
    # every instrumented call fail instead of being created on demand.
    os.makedirs(MULTIPROCESS_DIRECTORY, exist_ok=True)

# Request latency: from the fast reads (a few ms) to the 60 s gunicorn timeout.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Database and Redis time within one request: a round trip on loopback is ~0.1 ms.
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
# Celery tasks: a tally refresh takes milliseconds, a finalization of 1M votes seconds, the
# hard time limit is 600 s.
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)

HTTP_REQUESTS = Counter(
    "chorus_http_requests",
    "HTTP requests answered, by URL pattern, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "chorus_http_request_duration_seconds",
    "Time from the first middleware to the response, by URL pattern, method and status.",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_REQUEST_DATABASE = Histogram(
    "chorus_http_request_db_seconds",
    "PostgreSQL time (queries and prepared statements) within one request, by URL pattern.",
    ["route"],
    buckets=_STORE_BUCKETS,
)
HTTP_REQUEST_REDIS = Histogram(
    "chorus_http_request_redis_seconds",
    "Redis time (cache and throttle round trips, not broker publishes) within one request.",
    ["route"],
    buckets=_STORE_BUCKETS,
)

CELERY_TASKS = Counter(
    "chorus_celery_tasks",
    "Celery tasks that ended, by task name, queue and state (succeeded, failed, retried, "
    "revoked, rejected, ignored).",
    ["task", "queue", "state"],
)
CELERY_TASK_DURATION = Histogram(
    "chorus_celery_task_duration_seconds",
    "Run time of Celery tasks in the worker, by task name and queue.",
    ["task", "queue"],
    buckets=_TASK_BUCKETS,
)
