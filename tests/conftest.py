"""Fixtures shared by the whole suite.

Everything runs against the real PostgreSQL and Redis that `make test` starts. Tests that cross
the broker use `celery_worker`: a real `celery worker` process, started once per test process,
connected to this process's test database and broker prefix.
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Model, Sum
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from analytics.services import consumer as analytics_consumer
from analytics.services import heat, refresh_ahead, trending
from core.models import IdempotencyRecord
from engagement.models import (
    Comment,
    CommentLike,
    CountedFlip,
    DeviceToken,
    Follow,
    Hashtag,
    Like,
    Play,
    Removal,
    Report,
    Share,
    User,
    Video,
    VideoCounter,
    VideoHashtag,
)
from polls.models import CountedFlip as PollsCountedFlip
from rewards.services import events as reward_events
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_redis_namespace() -> Iterator[None]:
    """Each test starts with no throttle counters or cached entries of this test process."""
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    connection = get_redis_connection("default")
    for key in connection.scan_iter(match=f"{prefix}:*", count=1000):
        connection.delete(key)
    yield


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def _token_for(user: User, device_id: str = "test-device") -> str:
    _, token = DeviceToken.objects.create(user=user, device_id=device_id)
    return token


@pytest.fixture
def make_client() -> Callable[..., APIClient]:
    """make_client(user) -> an APIClient sending that user's Bearer token."""

    def make(user: User | None = None, device_id: str = "test-device") -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(
                HTTP_AUTHORIZATION=f"Bearer {_token_for(user, device_id)}",
                HTTP_X_DEVICE_ID=device_id,
            )
        return client

    return make


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def client_for_user(user: User, make_client: Callable[..., APIClient]) -> APIClient:
    return make_client(user)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: object) -> Iterator[subprocess.Popen]:
    """A real Celery worker process consuming every queue of this test process's broker prefix."""
    worker_name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "PYTEST_XDIST_WORKER": worker_name,
    }
    log_path = ROOT / ".local" / f"test-celery-{worker_name}.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--queues",
            ",".join(settings.CELERY_TASK_QUEUE_NAMES),
            "--hostname",
            f"test-{worker_name}-{os.getpid()}@localhost",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    try:
        while "ready." not in log_path.read_text():
            if process.poll() is not None:
                raise RuntimeError(f"celery worker exited early: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"celery worker not ready in 60 s: {log_path.read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


# The advisory locks the consumers (and the document refresher) hold while they run a pass
# (core.eventlog.consumer_lock).
CONSUMER_LOCKS = (
    reward_events.CONSUMER_LOCK,
    analytics_consumer.CONSUMER_LOCK,
    heat.CONSUMER_LOCK,
    trending.CONSUMER_LOCK,
    refresh_ahead.REFRESHER_LOCK,
)


@pytest.fixture(autouse=True)
def _commits_wake_the_worker_only_in_worker_tests(request: pytest.FixtureRequest) -> None:
    """Commits wake the consumers only in tests that use the real worker (settings/test.py)."""
    if "celery_worker" in request.fixturenames:
        settings_fixture = request.getfixturevalue("settings")
        settings_fixture.WAKE_ON_COMMIT = settings.WAKE_ON_COMMIT_WITH_WORKER


@pytest.fixture(autouse=True)
def _consumers_settled_before_flush(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test with the real worker and a flushed database: let the passes its writes woke (after
    the wake-up debounce) finish before the flush. A pass holding some tables while the flush
    truncates all of them deadlocks the flush. (Set up after pytest-django's database fixture,
    so torn down before it.)"""
    yield
    database = request.node.get_closest_marker("django_db")
    if "celery_worker" not in request.fixturenames or not (
        database and database.kwargs.get("transaction")
    ):
        return
    time.sleep(settings.WAKE_DEBOUNCE_SECONDS + 1.0)
    with connection.cursor() as cursor:
        for lock in CONSUMER_LOCKS:  # wait for a running pass, then let go at once
            cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [lock])
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [lock])


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll predicate until it is true or the timeout passes (bounded; returns the last result)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- helpers for exact assertions on refusals ---------------------------------------------------
PROBLEM_CONTENT_TYPE = "application/problem+json"

_STATE_MODELS: tuple[type[Model], ...] = (
    User,
    DeviceToken,
    Video,
    Hashtag,
    VideoHashtag,
    VideoCounter,
    Like,
    Comment,
    CommentLike,
    Share,
    Play,
    Follow,
    Report,
    IdempotencyRecord,
    CountedFlip,
    Removal,
    PollsCountedFlip,
)


def database_state() -> dict[str, Any]:
    """Row counts of every table the API writes, plus the counter totals.

    Compare before and after a refused request: `assert database_state() == before`.
    """
    state: dict[str, Any] = {
        model._meta.label: model._default_manager.count() for model in _STATE_MODELS
    }
    state["video counters"] = VideoCounter.objects.aggregate(
        likes=Sum("likes"), comments=Sum("comments"), shares=Sum("shares"), plays=Sum("plays")
    )
    state["comment like counts"] = Comment.objects.aggregate(total=Sum("like_count"))["total"]
    state["report statuses"] = dict(
        Report.objects.values_list("status").annotate(count=Count("id")).order_by()
    )
    return state


def unknown_id(model: type[Model]) -> int:
    """An id that no row of `model` has (ids are not predictable under xdist)."""
    return (model._default_manager.aggregate(highest=Max("pk"))["highest"] or 0) + 1000


def problem_document(
    status: int,
    code: str,
    detail: str,
    instance: str,
    *,
    errors: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The exact RFC 9457 body the API answers with."""
    body: dict[str, Any] = {
        "type": f"urn:chorus:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    body["instance"] = instance
    return body


def assert_problem(
    response: Any,
    status: int,
    code: str,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
) -> None:
    """The response is exactly this problem document, served as application/problem+json."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    instance = response.wsgi_request.path
    assert response.json() == problem_document(status, code, detail, instance, errors=errors)


@pytest.fixture
def throttle_rates(settings: Any) -> Callable[..., None]:
    """throttle_rates(writes="2/day") makes a throttle bite; restored after the test.

    The throttles read `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` on every request. Day-long
    windows keep a test from straddling a window boundary.
    """

    def set_rates(**rates: str) -> None:
        current = settings.REST_FRAMEWORK
        settings.REST_FRAMEWORK = {
            **current,
            "DEFAULT_THROTTLE_RATES": {**current["DEFAULT_THROTTLE_RATES"], **rates},
        }

    return set_rates
