"""Prometheus metrics: what each process measures, and what a scrape reads from the stores.

- `families`: the in-process metrics of every process (HTTP requests, Celery tasks), prefixed
  `chorus_`. Under gunicorn and Celery prefork they live in prometheus-client's multiprocess
  mode (PROMETHEUS_MULTIPROC_DIR), so one scrape sees every process of the host.
- `timing`: database and Redis time per request, accumulated in a context variable.
- `middleware`: request count and latency per route, method and status.
- `collectors`: figures read from PostgreSQL and Redis when /metrics is scraped; the apps
  contribute theirs through settings.METRICS_COLLECTORS, so `core` imports no app.
- `celery`: task signals and the worker's own exporter.
- `views`: GET /metrics, for loopback (configurable networks) or staff only.

The package root imports nothing: settings import `timing` for the Redis connection class.
"""
