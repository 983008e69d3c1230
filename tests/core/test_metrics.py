"""GET /metrics (issue 5): request, store-time, Celery and domain figures in the Prometheus format.

Everything runs against the real PostgreSQL and Redis; the worker test starts a real Celery
worker (prefork, multiprocess mode) and scrapes its exporter over HTTP. The in-process counters
are shared by the tests of one process, so tests assert by how much a figure moved.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_redis import get_redis_connection
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.db import fetch_prepared
from core.metrics.collectors import queue_keys
from core.metrics.timing import RequestTimes, TimedRedisConnection, request_times
from core.models import Watermark
from engagement.models import Like, User
from polls.models import Sticker, StickerTally
from tests.conftest import ROOT, _database_url, wait_until
from tests.factories import (
    CommentFactory,
    LikeFactory,
    StaffUserFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
    VoteFactory,
)

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# A port nothing listens on: a real, refused connection (no mocks).
UNREACHABLE_REDIS = "redis://127.0.0.1:1/1"


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def family_names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


DURATION_COUNT = "chorus_http_request_duration_seconds_count"


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(client: Client | None = None) -> Samples:
    response = (client or Client()).get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


# --- access ---------------------------------------------------------------------------------------
def test_loopback_gets_every_family_in_the_prometheus_format(
    django_assert_num_queries: Callable[..., Any],
) -> None:
    # the scrape-time collectors, whatever the data: four, each in its own atomic block (BEGIN,
    # COMMIT; in a test a savepoint pair) with SET LOCAL statement_timeout: the live tally lag; the
    # overdue stickers (2); the reward consumer's watermarks, its four streams' heads, the
    # finalized stickers; the analytics watermarks. No authentication from loopback.
    with django_assert_num_queries(22):
        response = Client().get("/metrics")

    assert response.status_code == 200
    names = family_names(response.content.decode())
    assert {
        "chorus_http_requests",
        "chorus_http_request_duration_seconds",
        "chorus_http_request_db_seconds",
        "chorus_http_request_redis_seconds",
        "chorus_celery_tasks",
        "chorus_celery_task_duration_seconds",
        "chorus_celery_queue_length",
        "chorus_votes",
        "chorus_likes",
        "chorus_live_tally_lag_seconds",
        "chorus_reward_consumer_lag_events",
        "chorus_reward_consumer_lag_seconds",
        "chorus_stickers_overdue",
        "chorus_metrics_collector_up",
    } <= names


def _not_found_document(path: str) -> dict[str, Any]:
    return {
        "type": "urn:chorus:problem:not_found",
        "title": "Not Found",
        "status": 404,
        "detail": "No resource at this address.",
        "code": "not_found",
        "instance": path,
    }


def test_other_addresses_get_the_same_404_as_an_unknown_address() -> None:
    outsider = Client(REMOTE_ADDR="203.0.113.7")

    response = outsider.get("/metrics")
    unknown = outsider.get("/no-such-page")

    assert response.status_code == unknown.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json() == _not_found_document("/metrics")
    assert unknown.json() == _not_found_document("/no-such-page")
    # Not even a write reveals the endpoint (no CSRF 403, no 405).
    assert outsider.post("/metrics").status_code == 404


def test_a_request_forwarded_by_an_undeclared_proxy_is_not_let_in_by_its_address() -> None:
    # A reverse proxy on the same host connects from loopback; NUM_PROXIES=0 says there is none.
    response = Client(HTTP_X_FORWARDED_FOR="203.0.113.7").get("/metrics")

    assert response.status_code == 404


def test_behind_a_declared_proxy_the_forwarded_client_address_decides(settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    outside = Client(HTTP_X_FORWARDED_FOR="203.0.113.7").get("/metrics")
    inside = Client(HTTP_X_FORWARDED_FOR="127.0.0.1").get("/metrics")

    assert (outside.status_code, inside.status_code) == (404, 200)


def test_allowed_networks_are_configurable(settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["203.0.113.0/24"]

    assert Client(REMOTE_ADDR="203.0.113.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="::ffff:203.0.113.9").get("/metrics").status_code == 200


def test_staff_get_the_page_from_anywhere_and_other_users_do_not(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    outside = "203.0.113.7"
    session = Client(REMOTE_ADDR=outside)
    session.force_login(StaffUserFactory.create())
    staff_token = make_client(StaffUserFactory.create())
    user_token = make_client(UserFactory.create())
    user_session = Client(REMOTE_ADDR=outside)
    user_session.force_login(UserFactory.create())

    # the scrape's 22 (test_loopback_gets_every_family_in_the_prometheus_format) after the
    # session and its user (2) or the device token with its user (1); a refusal costs only those
    with django_assert_num_queries(2 + 22):
        assert session.get("/metrics").status_code == 200
    with django_assert_num_queries(1 + 22):
        assert staff_token.get("/metrics", REMOTE_ADDR=outside).status_code == 200
    with django_assert_num_queries(1):
        assert user_token.get("/metrics", REMOTE_ADDR=outside).status_code == 404
    with django_assert_num_queries(2):
        assert user_session.get("/metrics").status_code == 404
    bad_token = Client(HTTP_AUTHORIZATION="Bearer not-a-token", REMOTE_ADDR=outside)
    with django_assert_num_queries(1):
        assert bad_token.get("/metrics").status_code == 404


def test_metrics_can_be_switched_off(settings: Any) -> None:
    settings.METRICS_ENABLED = False

    response = Client().get("/metrics")

    assert response.status_code == 404
    assert response.json() == _not_found_document("/metrics")


def test_scrapes_are_not_throttled_and_not_in_the_api_schema(
    throttle_rates: Callable[..., None], api_client: APIClient
) -> None:
    throttle_rates(anon="1/day", user="1/day")

    statuses = [Client().get("/metrics").status_code for _ in range(3)]
    schema = api_client.get("/api/schema/", {"format": "json"}).json()

    assert statuses == [200, 200, 200]
    assert not [path for path in schema["paths"] if "metrics" in path]


# --- requests -------------------------------------------------------------------------------------
def test_a_scrape_counts_itself_once_under_its_route() -> None:
    first = scrape()
    second = scrape()

    labels = {"route": "metrics", "method": "GET", "status": "200"}
    assert (value(second, "chorus_http_requests_total", **labels) or 0) - (
        value(first, "chorus_http_requests_total", **labels) or 0
    ) == 1


def test_unknown_addresses_count_as_unmatched_and_known_routes_by_their_pattern(
    client_for_user: APIClient,
) -> None:
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    video_route = {"route": "api/v1/videos/<id:video_id>", "method": "GET", "status": "404"}
    before = scrape()

    Client().get("/no/such/page")
    Client().get("/another/missing/page")
    client_for_user.get("/api/v1/videos/999999999")
    Client().generic("BREW", "/no/such/page")

    after = scrape()
    moved = {
        name: (value(after, "chorus_http_requests_total", **labels) or 0)
        - (value(before, "chorus_http_requests_total", **labels) or 0)
        for name, labels in (
            ("unmatched", unmatched),
            ("video", video_route),
            ("other method", {**unmatched, "method": "other"}),
        )
    }
    assert moved == {"unmatched": 2, "video": 1, "other method": 1}


def test_a_request_that_queries_observes_database_and_redis_time(
    client_for_user: APIClient,
) -> None:
    video = VideoFactory.create()
    route = "api/v1/videos/<id:video_id>"
    before = scrape()

    response = client_for_user.get(f"/api/v1/videos/{video.pk}")

    after = scrape()
    assert response.status_code == 200

    def moved(name: str) -> float:
        return (value(after, name, route=route) or 0) - (value(before, name, route=route) or 0)

    assert moved("chorus_http_request_db_seconds_count") == 1
    assert moved("chorus_http_request_db_seconds_sum") > 0
    assert moved("chorus_http_request_redis_seconds_count") == 1
    assert moved("chorus_http_request_redis_seconds_sum") > 0
    assert (value(after, DURATION_COUNT, route=route, method="GET", status="200") or 0) - (
        value(before, DURATION_COUNT, route=route, method="GET", status="200") or 0
    ) == 1


def test_prepared_statements_add_their_time_to_the_request() -> None:
    times = RequestTimes()
    token = request_times.set(times)
    try:
        fetch_prepared("SELECT 1 FROM pg_sleep(%s)", [0.05])
    finally:
        request_times.reset(token)

    assert 0.05 <= times.database < 5


def test_redis_time_is_measured_on_the_hiredis_connection_of_the_cache() -> None:
    client = get_redis_connection("default")
    pool = client.connection_pool
    times = RequestTimes()
    token = request_times.set(times)
    try:
        # BLPOP on an empty list waits its timeout out on the server: a known round trip.
        client.blpop(f"{settings.CACHES['default']['KEY_PREFIX']}:metrics-test-empty", 0.05)
    finally:
        request_times.reset(token)

    assert pool.connection_class is TimedRedisConnection
    connection_ = pool.get_connection()
    try:
        assert type(connection_._parser).__name__ == "_HiredisParser"
    finally:
        pool.release(connection_)
    assert 0.05 <= times.redis < 5


# --- domain ---------------------------------------------------------------------------------------
def test_likes_count_new_likes_once_committed(
    make_client: Callable[..., APIClient], django_capture_on_commit_callbacks: Any
) -> None:
    video = VideoFactory.create()
    comment = CommentFactory.create(video=video)
    likers = [make_client(UserFactory.create()) for _ in range(3)]
    before = scrape()

    # (the test's transaction stands for the request's: its callbacks run as it commits)
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [client.put(f"/api/v1/videos/{video.pk}/like").status_code for client in likers]
        again = likers[0].put(f"/api/v1/videos/{video.pk}/like").status_code
        comment_like = likers[1].put(f"/api/v1/comments/{comment.pk}/like").status_code
        uncommitted = scrape()
    after = scrape()

    assert statuses == [201, 201, 201] and again == 200 and comment_like == 201

    def moved(samples: Samples, target: str) -> float:
        return (value(samples, "chorus_likes_total", target=target) or 0) - (
            value(before, "chorus_likes_total", target=target) or 0
        )

    assert (moved(uncommitted, "video"), moved(uncommitted, "comment")) == (0, 0)
    assert (moved(after, "video"), moved(after, "comment")) == (3, 1)


def test_votes_count_written_votes_and_not_refused_ones(
    make_client: Callable[..., APIClient], django_capture_on_commit_callbacks: Any
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    closed = StickerFactory.create(options=["A", "B"], state=Sticker.State.CLOSED)
    option_a, option_b = sticker.options.order_by("position").values_list("id", flat=True)
    voter = make_client(UserFactory.create())
    before = value(scrape(), "chorus_votes_total") or 0

    with django_capture_on_commit_callbacks(execute=True):
        first = voter.post(f"/api/v1/stickers/{sticker.pk}/votes", {"option_ids": [option_a]})
        changed = voter.post(f"/api/v1/stickers/{sticker.pk}/votes", {"option_ids": [option_b]})
        same = voter.post(f"/api/v1/stickers/{sticker.pk}/votes", {"option_ids": [option_b]})
        refused = voter.post(
            f"/api/v1/stickers/{closed.pk}/votes",
            {"option_ids": list(closed.options.values_list("id", flat=True)[:1])},
        )

    after = value(scrape(), "chorus_votes_total") or 0
    assert [r.status_code for r in (first, changed, same, refused)] == [201, 200, 200, 409]
    assert after - before == 2


def test_overdue_stickers_are_counted_by_state() -> None:
    now = timezone.now()
    long_ago = now - timedelta(hours=2)
    late = now - timedelta(minutes=1)
    for state in (Sticker.State.SCHEDULED, Sticker.State.OPEN, Sticker.State.OPEN):
        StickerFactory.create(state=state, opens_at=long_ago, closes_at=late)
    StickerFactory.create(
        state=Sticker.State.CLOSED, opens_at=long_ago, closes_at=late, closed_at=late
    )
    # Not overdue: closing in the future, due only within the sweep's grace, final, canceled.
    StickerFactory.create(state=Sticker.State.OPEN, closes_at=now + timedelta(minutes=5))
    just_due = now - timedelta(seconds=2)
    StickerFactory.create(state=Sticker.State.OPEN, opens_at=long_ago, closes_at=just_due)
    StickerFactory.create(
        state=Sticker.State.CLOSED, opens_at=long_ago, closes_at=just_due, closed_at=just_due
    )
    StickerFactory.create(
        state=Sticker.State.FINAL, opens_at=long_ago, closes_at=late, closed_at=late
    )
    StickerFactory.create(state=Sticker.State.CANCELED, opens_at=long_ago, closes_at=late)

    samples = scrape()

    assert {
        state: value(samples, "chorus_stickers_overdue", state=state)
        for state in ("scheduled", "open", "closed")
    } == {"scheduled": 1, "open": 2, "closed": 1}


def test_live_tally_lag_is_the_age_of_the_oldest_vote_not_in_its_tally() -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    current = StickerFactory.create(options=["A", "B"])
    now = timezone.now()
    VoteFactory.create(sticker=sticker, created_at=now - timedelta(seconds=40))
    VoteFactory.create(sticker=sticker, created_at=now - timedelta(seconds=5))
    VoteFactory.create(sticker=current, created_at=now - timedelta(seconds=90))
    StickerTally.objects.create(sticker=current, as_of=now - timedelta(seconds=60))
    # An uncounted vote changes no tally.
    VoteFactory.create(sticker=current, created_at=now - timedelta(seconds=50), counted=False)

    lagging = value(scrape(), "chorus_live_tally_lag_seconds")
    StickerTally.objects.create(sticker=sticker, as_of=now)
    caught_up = value(scrape(), "chorus_live_tally_lag_seconds")

    # (PostgreSQL's now() is when the test's transaction started, close to `now`)
    assert lagging is not None and 35 <= lagging <= 45
    assert caught_up == 0


def test_reward_consumer_lag_counts_events_past_the_watermark() -> None:
    now = timezone.now()
    likes = [LikeFactory.create() for _ in range(4)]
    Like.objects.filter(pk__in=[like.pk for like in likes]).update(
        created_at=now - timedelta(seconds=100)
    )
    newest = Like.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    Watermark.objects.update_or_create(name="rewards:likes", defaults={"position": likes[0].pk})
    vote = VoteFactory.create(created_at=now - timedelta(seconds=20))
    Watermark.objects.update_or_create(name="rewards:votes", defaults={"position": vote.pk})

    behind = scrape()
    Watermark.objects.filter(name="rewards:likes").update(position=newest)
    caught_up = scrape()

    assert value(behind, "chorus_reward_consumer_lag_events", source="likes") == 3
    assert newest - likes[0].pk == 3
    seconds = value(behind, "chorus_reward_consumer_lag_seconds", source="likes")
    assert seconds is not None and 95 <= seconds <= 105
    assert value(behind, "chorus_reward_consumer_lag_events", source="votes") == 0
    assert value(behind, "chorus_reward_consumer_lag_seconds", source="votes") == 0
    assert value(caught_up, "chorus_reward_consumer_lag_events", source="likes") == 0
    assert value(caught_up, "chorus_reward_consumer_lag_seconds", source="likes") == 0


# --- queues and failures --------------------------------------------------------------------------
@pytest.fixture
def idle_queue(settings: Any) -> Iterator[str]:
    """A queue this test process's broker prefix knows and no worker consumes."""
    name = f"metrics-idle-{os.getpid()}-{time.monotonic_ns()}"
    settings.CELERY_TASK_QUEUE_NAMES = [*settings.CELERY_TASK_QUEUE_NAMES, name]
    yield name
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    prefix = options.get("global_keyprefix", "")
    broker.delete(*queue_keys(name, options), f"{prefix}_kombu.binding.{name}")
    broker.close()


def test_queue_length_counts_the_messages_waiting_in_a_queue(idle_queue: str) -> None:
    for priority in (None, None, 9, 5):
        celery_app.send_task(
            "core.tasks.purge_idempotency_keys", queue=idle_queue, priority=priority
        )

    samples = scrape()

    assert value(samples, "chorus_celery_queue_length", queue=idle_queue) == 4
    assert value(samples, "chorus_metrics_collector_up", collector="queue_length") == 1


def test_a_failing_collector_is_reported_and_the_scrape_still_answers(settings: Any) -> None:
    settings.CELERY_BROKER_URL = UNREACHABLE_REDIS

    samples = scrape()

    assert value(samples, "chorus_metrics_collector_up", collector="queue_length") == 0
    assert not [key for key in samples if key[0] == "chorus_celery_queue_length"]
    assert {
        name: value(samples, "chorus_metrics_collector_up", collector=name)
        for name in ("live_tally_lag", "stickers_overdue", "reward_consumer_lag")
    } == {"live_tally_lag": 1, "stickers_overdue": 1, "reward_consumer_lag": 1}
    # The transaction the scrape ran in is still usable.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert User.objects.count() >= 0


# --- the worker's exporter ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _read_exporter(port: int) -> Samples:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            return parse(reply.read().decode())
    except OSError:
        return {}


@pytest.fixture
def metrics_worker(tmp_path: Path, django_db_setup: None) -> Iterator[tuple[int, str, Path]]:
    """A prefork Celery worker in multiprocess mode, consuming only a queue of its own."""
    worker_name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    queue = f"metrics-worker-{worker_name}-{os.getpid()}"
    port = _free_port()
    directory = tmp_path / "prometheus"
    (directory).mkdir()
    # A file a previous run left behind: the worker clears it when it starts.
    (directory / "counter_999999.db").write_bytes(b"\0" * 8)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "PYTEST_XDIST_WORKER": worker_name,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "CELERY_METRICS_PORT": str(port),
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker"),
                *("--pool", "prefork", "--concurrency", "1", "--queues", queue),
                *("--hostname", f"metrics-{worker_name}-{os.getpid()}@localhost"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
                *("--loglevel", "INFO"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = wait_until(
                lambda: "ready." in log_path.read_text() or process.poll() is not None, 60
            )
            assert ready and process.poll() is None, log_path.read_text()[-3000:]
            yield port, queue, directory
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_a_worker_serves_its_task_counts_and_durations(
    metrics_worker: tuple[int, str, Path],
) -> None:
    port, queue, directory = metrics_worker
    task = "core.tasks.purge_idempotency_keys"

    assert not (directory / "counter_999999.db").exists()
    for _ in range(2):
        celery_app.send_task(task, queue=queue)
    # The task takes no arguments: this delivery fails in the worker with a TypeError.
    celery_app.send_task(task, args=["unexpected"], queue=queue)

    def counts() -> tuple[float | None, float | None, float | None]:
        samples = _read_exporter(port)
        return (
            value(samples, "chorus_celery_tasks_total", task=task, queue=queue, state="succeeded"),
            value(samples, "chorus_celery_tasks_total", task=task, queue=queue, state="failed"),
            value(samples, "chorus_celery_task_duration_seconds_count", task=task, queue=queue),
        )

    wait_until(lambda: counts() == (2, 1, 3), timeout=60, interval=0.25)
    samples = _read_exporter(port)
    assert counts() == (2, 1, 3)
    duration = value(samples, "chorus_celery_task_duration_seconds_sum", task=task, queue=queue)
    assert duration is not None and 0 < duration < 60
    # Written by the pool's child, served by the main process, summed from the directory.
    assert any(path.name.startswith("counter_") for path in directory.iterdir())
