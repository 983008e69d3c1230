"""Queueing by task name after commit (core.enqueue) with the real Redis, broker and database.

Publishing is observed with Celery's `after_task_publish` signal: it fires once the broker took
the message. The task used is `core.tasks.purge_idempotency_keys` (harmless if this test
process's worker runs it); the flow through the worker is the last test.
"""

import ast
import importlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import current_app
from celery.signals import after_task_publish
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_redis import get_redis_connection

from config.celery import app as celery_app
from config.settings import base as base_settings
from core.enqueue import enqueue_flag_clear, enqueue_flag_key, enqueue_now, enqueue_on_commit
from core.models import IdempotencyRecord
from core.wakeups import wake, woken
from tests.conftest import ROOT, _database_url, wait_until
from tests.factories import UserFactory

APPS = ("core", "engagement", "polls", "rewards", "analytics", "integrity")
TASK = "core.tasks.purge_idempotency_keys"
FLAG = "test:enqueue-probe"


@pytest.fixture
def published() -> Iterator[list[tuple[str, Any]]]:
    """(task name, args) of every task this process publishes during the test."""
    sent: list[tuple[str, Any]] = []

    def record(sender: str | None = None, headers: dict | None = None, body: Any = None, **_: Any):
        sent.append((sender or "", list(body[0]) if body else None))

    after_task_publish.connect(record, weak=False)
    yield sent
    after_task_publish.disconnect(record)


@pytest.mark.django_db(transaction=True)
def test_nothing_is_sent_when_the_transaction_rolls_back(published: list) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(TASK, 7, once_key=FLAG)
        raise RuntimeError("rolled back")

    assert published == []
    assert cache.get(FLAG) is None  # the flag is not taken either


@pytest.mark.django_db(transaction=True)
def test_it_is_sent_once_after_commit_and_not_before(published: list) -> None:
    with transaction.atomic():
        enqueue_on_commit(TASK, 7)
        assert published == []

    assert published == [(TASK, [7])]


@pytest.mark.django_db(transaction=True)
def test_with_a_once_key_n_commits_send_one_until_the_task_clears_the_flag(
    published: list,
) -> None:
    # when three transactions commit while the flag is set
    for _ in range(3):
        with transaction.atomic():
            enqueue_on_commit(TASK, once_key=FLAG, once_ttl=60)

    # then one task was sent, and the flag says it is queued
    assert published == [(TASK, [])]
    assert cache.get(FLAG) == 1
    assert 0 < get_redis_connection("default").ttl(enqueue_flag_key(FLAG)) <= 60

    # when the task starts (it clears the flag), the next commit sends again
    enqueue_flag_clear(FLAG)
    with transaction.atomic():
        enqueue_on_commit(TASK, once_key=FLAG)
    assert published == [(TASK, []), (TASK, [])]


@pytest.mark.django_db
def test_outside_a_transaction_enqueue_now_sends_at_once(published: list) -> None:
    assert enqueue_now(TASK, 1, once_key=FLAG) is True
    assert enqueue_now(TASK, 2, once_key=FLAG) is False
    assert published == [(TASK, [1])]


def test_the_current_app_of_any_thread_is_the_projects() -> None:
    # core sends through celery.current_app, which is per thread: config makes its app the default
    seen: list[tuple[str | None, str]] = []
    thread = threading.Thread(
        target=lambda: seen.append((current_app.main, current_app.conf.broker_url))
    )
    thread.start()
    thread.join(timeout=10)
    assert seen == [("chorus", settings.CELERY_BROKER_URL)]
    assert celery_app.main == "chorus"


def _task_names_in_the_apps() -> set[str]:
    """Every string of the apps' code that is a task name ("polls.tasks.finalize_sticker")."""
    pattern = re.compile(rf"^({'|'.join(APPS)})\.tasks\.[a-z_]+$")
    names = set()
    for app_name in APPS:
        for path in (ROOT / app_name).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                value = node.value if isinstance(node, ast.Constant) else None
                if isinstance(value, str) and pattern.match(value):
                    names.add(value)
    return names


def test_every_task_name_sent_by_name_is_a_registered_task() -> None:
    # a typo in a name would be a task nobody runs: the names the apps send are real tasks
    for app_name in APPS:
        importlib.import_module(f"{app_name}.tasks")
    names = _task_names_in_the_apps()
    assert {"polls.tasks.finalize_sticker", "rewards.tasks.backfill_rule"} <= names
    # (the production mapping: the test settings wake fewer consumers)
    names |= {name for tasks in base_settings.WAKE_ON_COMMIT.values() for name in tasks}
    names |= {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert sorted(name for name in names if name not in celery_app.tasks) == []


# --- Redis or the broker down -------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_SCRIPT = """
import django
django.setup()
from django.db import transaction
from core.enqueue import enqueue_on_commit, enqueue_flag_key
from django_redis import get_redis_connection
with transaction.atomic():
    enqueue_on_commit({task!r}, 1, once_key={flag!r})
print("request went on")
if {check_flag!r}:
    print("flag left:", get_redis_connection("default").exists(enqueue_flag_key({flag!r})))
"""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("down", "warning"),
    [
        ("CELERY_BROKER_URL", f"broker unreachable: {TASK} not queued; its sweep will run it"),
        ("REDIS_URL", f"Redis unreachable: {TASK} not queued; its sweep will run it"),
    ],
)
def test_with_the_broker_or_redis_unreachable_it_warns_and_the_request_goes_on(
    down: str, warning: str
) -> None:
    # given a process whose broker (or Redis) is a closed port
    closed = f"redis://127.0.0.1:{_closed_port()}/1"
    flag = f"{FLAG}-{os.getpid()}"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "LOG_FORMAT": "plain",
        down: closed,
    }
    script = _SCRIPT.format(task=TASK, flag=flag, check_flag=down == "CELERY_BROKER_URL")

    # when a transaction that queues a task commits
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then no exception reached the caller, a warning was logged, and (broker down) the flag was
    # released so the next commit tries again
    assert result.returncode == 0, result.stderr
    assert "request went on" in result.stdout
    assert [line for line in result.stderr.splitlines() if "WARNING core.enqueue" in line]
    assert warning in result.stderr
    if down == "CELERY_BROKER_URL":
        assert "flag left: 0" in result.stdout


# --- through the real worker --------------------------------------------------------------------
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_task_queued_by_name_after_commit_runs_in_the_worker(celery_worker: object) -> None:
    # given an idempotency answer past its TTL
    record = IdempotencyRecord.objects.create(
        user=UserFactory.create(), key="old", request_fingerprint="f", response_status=201
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        created_at=timezone.now() - settings.IDEMPOTENCY_KEY_TTL - timedelta(minutes=1)
    )

    # when the purge is queued by name in a transaction that commits
    with transaction.atomic():
        enqueue_on_commit(TASK, once_key=FLAG)

    # then the worker runs it
    assert wait_until(lambda: not IdempotencyRecord.objects.filter(pk=record.pk).exists(), 60)


@pytest.mark.django_db(transaction=True)
def test_a_wake_up_queues_each_consumer_of_the_topic_once_with_one_redis_round_trip(
    published: list, settings: Any
) -> None:
    # given a topic with two consumers
    consumers = [TASK, "rewards.tasks.backfill_pending_rules"]
    settings.WAKE_ON_COMMIT = {**settings.WAKE_ON_COMMIT, "test-topic": consumers}
    for task_name in consumers:
        woken(task_name)
    round_trips: list[int] = []
    connection = get_redis_connection("default")
    original = connection.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = original(*args, **kwargs)
        execute = pipe.execute

        def counted_execute(*a: Any, **k: Any) -> Any:
            round_trips.append(len(pipe))
            return execute(*a, **k)

        pipe.execute = counted_execute
        return pipe

    connection.pipeline = counting_pipeline  # type: ignore[method-assign]
    try:
        # when two transactions commit, each waking the topic
        for _ in range(2):
            with transaction.atomic():
                wake("test-topic")
    finally:
        connection.pipeline = original  # type: ignore[method-assign]

    # then each consumer was queued once, and each wake-up was one round trip for both flags
    assert sorted(name for name, _ in published) == sorted(consumers)
    assert round_trips == [2, 2]
