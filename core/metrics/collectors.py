"""What a scrape of /metrics reads: this host's in-process families, and the figures of the
whole deployment that live in PostgreSQL and Redis (queue depths, the apps' domain figures).

The store figures are read when scraped, not kept in a process: they are the same from every
web host (take max() across targets), and no process has to be the one that owns them (SPEC
§7). Each comes from a collector named in settings.METRICS_COLLECTORS — the apps own the ones
over their tables, so `core` imports no app. A collector that fails (database or Redis down, a
timeout) leaves its samples out and reports `chorus_metrics_collector_up{collector} 0`; the
scrape itself still answers 200.
"""

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Protocol

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils.module_loading import import_string
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# A scrape must answer well within Prometheus's default 10 s scrape timeout.
STATEMENT_TIMEOUT = "2s"
REDIS_TIMEOUT_SECONDS = 1.0


class StoreCollector(Protocol):
    """A figure read from PostgreSQL or Redis at scrape time."""

    # The `collector` label of chorus_metrics_collector_up.
    name: str

    def collect(self) -> Iterable[Metric]: ...


@contextmanager
def scrape_cursor() -> Iterator[Any]:
    """A cursor for one collector's queries: in a transaction of its own, so a failing query
    cannot break the next collector's (nor a caller's), and under a statement timeout, so a
    scrape never waits long on a slow plan."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        yield cursor


class InProcessCollector:
    """This host's in-process families (every process of it in multiprocess mode).

    In multiprocess mode a family appears only once some process wrote a sample; the families
    this process defines under `prefix` are listed without samples until then, so a dashboard
    or an `absent()` alert sees every family from the first scrape.
    """

    def __init__(self, directory: str | None, prefix: str = "chorus_") -> None:
        self.directory = directory
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        if self.directory is None:
            yield from REGISTRY.collect()
            return
        families = list(MultiProcessCollector(None, self.directory).collect())
        yield from families
        seen = {family.name for family in families}
        for family in REGISTRY.collect():
            if family.name.startswith(self.prefix) and family.name not in seen:
                yield Metric(family.name, family.documentation, family.type, family.unit)


class StoreCollectors:
    """Runs each store collector in turn and reports which ones could answer."""

    def __init__(self, collectors: Iterable[StoreCollector]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "chorus_metrics_collector_up",
            "1 when the collector read its figures in this scrape, 0 when it failed "
            "(its samples are then missing).",
            labels=["collector"],
        )
        for collector in self.collectors:
            try:
                families = list(collector.collect())
            except Exception:
                logger.warning("metrics collector %s failed", collector.name, exc_info=True)
                up.add_metric([collector.name], 0)
                continue
            up.add_metric([collector.name], 1)
            yield from families
        yield up


@lru_cache(maxsize=8)
def _store_collectors(paths: tuple[str, ...]) -> tuple[StoreCollector, ...]:
    return tuple(import_string(path)() for path in paths)


def scrape_registry(directory: str | None) -> CollectorRegistry:
    """Everything /metrics shows, collected when it is rendered."""
    registry = CollectorRegistry(auto_describe=False)
    in_process: Collector = InProcessCollector(directory)
    registry.register(in_process)
    registry.register(StoreCollectors(_store_collectors(tuple(settings.METRICS_COLLECTORS))))
    return registry


# --- queue depth ------------------------------------------------------------------------------
# kombu's Redis transport keeps a queue as a list named after it, plus one list per priority
# step above 0 named `queue + sep + step`; all of its keys carry the global key prefix.
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_SEPARATOR = "\x06\x16"


@lru_cache(maxsize=4)
def _broker_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )


def queue_keys(queue: str, options: dict[str, Any]) -> list[str]:
    """The Redis lists that hold the messages of one queue (kombu's naming)."""
    prefix = options.get("global_keyprefix", "")
    separator = options.get("sep", KOMBU_SEPARATOR)
    steps = options.get("priority_steps", KOMBU_PRIORITY_STEPS)
    return [f"{prefix}{queue}{separator}{step}" if step else f"{prefix}{queue}" for step in steps]


class QueueLengthCollector:
    """Messages waiting in each Celery queue (LLEN of its lists, one pipeline for all).

    Messages a worker has taken but not yet acknowledged are not waiting and not counted.
    """

    name = "queue_length"

    def collect(self) -> Iterator[Metric]:
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
        queues = list(settings.CELERY_TASK_QUEUE_NAMES)
        keys = [queue_keys(queue, options) for queue in queues]
        pipe = _broker_client(settings.CELERY_BROKER_URL).pipeline(transaction=False)
        for queue_lists in keys:
            for key in queue_lists:
                pipe.llen(key)
        lengths = iter(pipe.execute())
        family = GaugeMetricFamily(
            "chorus_celery_queue_length",
            "Messages waiting in the Celery queue (not yet taken by a worker).",
            labels=["queue"],
        )
        for queue, queue_lists in zip(queues, keys, strict=True):
            family.add_metric([queue], sum(next(lengths) for _ in queue_lists))
        yield family
