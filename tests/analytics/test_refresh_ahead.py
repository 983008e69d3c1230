"""Refresh-ahead of the creator-centre documents (analytics.services.refresh_ahead,
docs/analytics.md "Serving"): a served document is marked active and recomputed before it would
stop being served, one refresher run at a time, never for someone else's video.

The runs' bodies are tested in this process with the production periods and a fake clock for
the cache (as tests/analytics/test_documents.py), their sends recorded instead of published (the
suite's shared worker would run them beside other tests); the flow through the broker and the
real worker is the last test.
"""

import logging
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, NamedTuple

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone
from django_redis import get_redis_connection
from prometheus_client import REGISTRY
from redis.connection import Connection
from rest_framework.test import APIClient

from analytics import documents
from analytics.documents import REFRESHER_FLAG, REFRESHER_TASK, DocumentKey, etag_of
from analytics.services.consumer import analytics_events_process
from analytics.services.refresh_ahead import RefreshReport, documents_refresh_ahead
from analytics.tasks import refresh_analytics_documents
from config.celery import app as celery_app
from core.enqueue import enqueue_flag_key
from tests.analytics import world
from tests.conftest import wait_until
from tests.factories import UserFactory

DAY = timedelta(days=1)
ClientMaker = Callable[..., APIClient]
WEEK = "/api/v1/creators/me/analytics?days=7"
MONTH = "/api/v1/creators/me/analytics?days=28"
FRESH, MAX_AGE, TICK, ACTIVE = 10.0, 30.0, 5.0, 300.0


def consume() -> None:
    while analytics_events_process().more:
        pass


class Clock:
    """The cache's clock (only the documents' ages; the database keeps its own time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    clock = Clock()
    real = documents.time.time
    monkeypatch.setattr(documents.time, "time", lambda: real() + clock.offset)
    with override_settings(
        ANALYTICS_DOCUMENT_FRESH_SECONDS=FRESH,
        ANALYTICS_DOCUMENT_MAX_AGE_SECONDS=MAX_AGE,
        ANALYTICS_DOCUMENT_REFRESH_TICK_SECONDS=TICK,
        ANALYTICS_DOCUMENT_ACTIVE_SECONDS=ACTIVE,
        ANALYTICS_DOCUMENT_REFRESH_AHEAD=True,
    ):
        yield clock


class Sent(NamedTuple):
    task: str
    args: tuple[Any, ...]
    countdown: float | None
    once_key: str | None


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """The refresher runs queued during the test (recorded, not published)."""
    recorded: list[Sent] = []

    def record(
        task: str, *args: Any, countdown: float | None = None, once_key: str | None = None
    ) -> bool:
        recorded.append(Sent(task, args, countdown, once_key))
        return True

    monkeypatch.setattr(documents, "task_send", record)
    return recorded


def likes(client: APIClient, path: str = WEEK) -> tuple[int, str]:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()["totals"]["likes"], response["ETag"]


def key_of(user_id: int, days: int = 7, video_id: int | None = None) -> DocumentKey:
    if video_id is None:
        return DocumentKey("creator", user_id, user_id, days, "UTC")
    return DocumentKey("video", video_id, user_id, days, "UTC")


def stored(key: DocumentKey) -> dict[str, Any] | None:
    envelope = cache.get(documents._raw_key(key))
    return envelope if isinstance(envelope, dict) else None


def active() -> list[str]:
    members = get_redis_connection("default").zrange(cache.make_key(documents._ACTIVE_KEY), 0, -1)
    return sorted(member.decode() for member in members)


def flag() -> str | None:
    value = get_redis_connection("default").get(enqueue_flag_key(REFRESHER_FLAG))
    return value.decode() if value is not None else None


def refreshes(kind: str) -> float:
    labels = {"kind": kind}
    return REGISTRY.get_sample_value("chorus_analytics_document_refreshes_total", labels) or 0.0


def run(token: str | None) -> RefreshReport:
    return documents_refresh_ahead(token=token)


# --- marking and arming, on the serve's round trip ---------------------------------------------
@pytest.mark.django_db
def test_serves_mark_their_documents_active_and_arm_one_refresher_run(
    make_client: ClientMaker, clock: Clock, sent: list[Sent]
) -> None:
    # given a creator with a video
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)

    # when their dashboard and the video's page are served, twice
    for _ in range(2):
        likes(client)
        likes(client, f"/api/v1/videos/{clip.pk}/analytics?days=7")

    # then both documents are active, and one run was queued a tick later, holding the flag
    assert active() == sorted(
        [key_of(creator.pk).member(), key_of(creator.pk, video_id=clip.pk).member()]
    )
    assert len(sent) == 1
    token = sent[0].args[0]
    assert sent == [Sent(REFRESHER_TASK, (token,), TICK, REFRESHER_FLAG)]
    assert flag() == token


@pytest.mark.django_db
def test_a_hit_still_costs_one_redis_round_trip(
    make_client: ClientMaker, clock: Clock, sent: list[Sent], monkeypatch: pytest.MonkeyPatch
) -> None:
    creator = UserFactory.create()
    world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    likes(client)  # computed and stored
    round_trips: list[bytes] = []
    original = Connection.send_packed_command  # (every Redis connection's, timed or not)

    def counted(connection: Any, command: Any, check_health: bool = True) -> None:
        round_trips.append(command)
        return original(connection, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)

    # a hit: the throttle's round trip carries the read, the mark and the arming (the flag is
    # held, so nothing is sent)...
    likes(client)
    assert len(round_trips) == 1 and len(sent) == 1
    # ...as it carried the read alone before refresh-ahead
    round_trips.clear()
    with override_settings(ANALYTICS_DOCUMENT_REFRESH_AHEAD=False):
        likes(client)
    assert len(round_trips) == 1


# --- what a run recomputes ----------------------------------------------------------------------
@pytest.mark.django_db
def test_a_run_recomputes_a_document_only_when_it_would_not_be_served_at_the_next_run(
    make_client: ClientMaker, clock: Clock, sent: list[Sent]
) -> None:
    # given a creator's dashboard served once
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    key = key_of(creator.pk)
    assert likes(client)[0] == 0
    token = sent[0].args[0]
    served = stored(key)
    assert served is not None
    before = refreshes("creator")
    margin = documents.REFRESH_MARGIN_SECONDS

    # then while unchanged it is left alone until a tick (plus margin) before its max age...
    clock.advance(MAX_AGE - TICK - margin - 0.5)
    report = run(token)
    assert (report.ran, report.active, report.refreshed) == (True, 1, 0)
    assert stored(key) == served
    # ...and recomputed from then on, for the same figures
    clock.advance(0.5)
    assert run(token).refreshed == 1
    renewed = stored(key)
    assert renewed is not None and renewed["at"] > served["at"]
    assert renewed["document"]["totals"] == served["document"]["totals"]
    assert refreshes("creator") == before + 1

    # when a like is rolled up (the creator's version moves): left alone while it will still be
    # fresh at the next run...
    world.like(UserFactory.create(), clip, timezone.now() - DAY)
    consume()
    clock.advance(FRESH - TICK - margin - 0.5)
    assert run(token).refreshed == 0
    assert stored(key) == renewed
    # ...then recomputed with the like
    clock.advance(0.5)
    assert run(token).refreshed == 1
    current = stored(key)
    assert current is not None and current["document"]["totals"]["likes"] == 1
    assert refreshes("creator") == before + 2

    # and the next request is a hit on the refreshed document
    assert likes(client) == (1, etag_of(current))


@pytest.mark.django_db
def test_a_run_computes_an_active_document_that_is_no_longer_stored(
    make_client: ClientMaker, clock: Clock, sent: list[Sent]
) -> None:
    creator = UserFactory.create()
    world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    key = key_of(creator.pk)
    _, etag = likes(client)
    token = sent[0].args[0]
    cache.delete(documents._raw_key(key))  # expired, evicted

    assert run(token).refreshed == 1
    refreshed = stored(key)
    assert refreshed is not None and likes(client) == (0, etag_of(refreshed))
    assert etag_of(refreshed) != etag


@pytest.mark.django_db
def test_a_document_not_served_for_the_active_window_is_dropped_and_no_longer_refreshed(
    make_client: ClientMaker, clock: Clock, sent: list[Sent]
) -> None:
    # given a week's and a month's dashboard served, and only the month's served again later
    creator = UserFactory.create()
    world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    week, month = key_of(creator.pk, 7), key_of(creator.pk, 28)
    likes(client, WEEK)
    likes(client, MONTH)
    token = sent[0].args[0]
    clock.advance(200)
    likes(client, MONTH)
    week_before, month_before = stored(week), stored(month)
    assert week_before is not None and month_before is not None

    # when a run comes past the week's active window (both would be due)
    clock.advance(ACTIVE - 200 + 1)
    report = run(token)

    # then the week's is dropped and left as it was; the month's is recomputed
    assert (report.active, report.refreshed, report.dropped) == (1, 1, 0)
    assert active() == [month.member()]
    assert stored(week) == week_before
    month_after = stored(month)
    assert month_after is not None and month_after["at"] > month_before["at"]


@pytest.mark.django_db
def test_another_users_video_is_never_refreshed_into_a_document_for_them(
    make_client: ClientMaker, clock: Clock, sent: list[Sent]
) -> None:
    # given a stranger asking for a creator's video (a 404, but marked like any serve)
    creator, stranger = UserFactory.create(), UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    path = f"/api/v1/videos/{clip.pk}/analytics?days=7"
    outsider = make_client(stranger)
    assert outsider.get(path).status_code == 404
    token = sent[0].args[0]
    theirs, own = key_of(stranger.pk, video_id=clip.pk), key_of(creator.pk, video_id=clip.pk)
    assert active() == [theirs.member()]

    # when a run comes: the stranger's key is dropped, and nothing is stored under the video
    report = run(token)
    assert (report.refreshed, report.dropped) == (0, 1)
    assert active() == [] and stored(own) is None
    assert outsider.get(path).status_code == 404

    # and with the creator's own document stored and due as well: only that one is recomputed,
    # still the creator's, and the stranger still gets the 404
    likes(make_client(creator), path)
    assert outsider.get(path).status_code == 404
    clock.advance(MAX_AGE - 1)
    # (the first run found nothing left active and let go: the creator's serve armed a new one)
    assert len(sent) == 2
    report = run(sent[1].args[0])
    assert (report.refreshed, report.dropped) == (1, 1)
    assert active() == [own.member()]
    refreshed = stored(own)
    assert refreshed is not None and refreshed["creator"] == creator.pk
    assert outsider.get(path).status_code == 404


# --- one run at a time --------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_refresher_queues_its_next_run_while_documents_are_active_one_run_at_a_time(
    make_client: ClientMaker, clock: Clock, sent: list[Sent]
) -> None:
    creator = UserFactory.create()
    world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    likes(client)
    likes(client)
    token = sent[0].args[0]
    assert len(sent) == 1  # the second serve found the run queued

    # a run queued with another token (an older run whose flag expired) stops at once, and so
    # does the beat's while a run holds the flag: two runs never keep each other going
    assert run("an-older-run") == RefreshReport()
    assert run(None) == RefreshReport()
    assert len(sent) == 1 and flag() == token

    # the run holding the flag queues the next one, a tick later, with the same token
    report = run(token)
    assert report.ran and report.next_queued
    assert sent[1:] == [Sent(REFRESHER_TASK, (token,), TICK, REFRESHER_FLAG)]

    # once nothing was served for the active window the run queues nothing and lets go...
    clock.advance(ACTIVE + 1)
    report = run(token)
    assert (report.ran, report.active, report.next_queued) == (True, 0, False)
    assert flag() is None and len(sent) == 2
    # ...so that the next serve arms a new run
    likes(client)
    assert len(sent) == 3 and sent[2].args[0] != token and flag() == sent[2].args[0]

    # the beat's safety net: when the queued run was lost and its flag expired, it takes over
    get_redis_connection("default").delete(enqueue_flag_key(REFRESHER_FLAG))
    report = run(None)
    assert report.ran and report.next_queued
    assert flag() == sent[3].args[0] and sent[3].countdown == TICK


def test_the_refresher_runs_on_the_analytics_queue_with_a_beat_safety_net() -> None:
    assert celery_app.amqp.router.route({}, REFRESHER_TASK)["queue"].name == "analytics"
    entries = [
        entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == REFRESHER_TASK
    ]
    assert entries == [
        {"task": REFRESHER_TASK, "schedule": timedelta(seconds=30), "options": {"expires": 30}}
    ]


# --- Redis away ---------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_unreachable(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }


@pytest.mark.django_db
def test_with_redis_unreachable_a_run_logs_and_returns(
    clock: Clock, redis_unreachable: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="analytics.services.refresh_ahead"):
        assert refresh_analytics_documents("a-token") == 0
        assert refresh_analytics_documents() == 0
    assert [record.getMessage() for record in caplog.records] == [
        "Redis unreachable: no creator-centre document refreshed ahead"
    ] * 2


@pytest.mark.django_db
def test_with_redis_unreachable_a_serve_computes_and_arms_nothing(
    make_client: ClientMaker, clock: Clock, sent: list[Sent], redis_unreachable: None
) -> None:
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    world.like(UserFactory.create(), clip, timezone.now() - DAY)
    consume()

    assert likes(make_client(creator))[0] == 1
    assert sent == []


# --- through the broker and the real worker -----------------------------------------------------
@pytest.fixture
def refresher_stopped_after(settings: Any) -> Iterator[None]:
    """Serves arm the refresher; afterwards its flag and active set go, so the worker's next
    run stops without touching the database (and a running one is waited for before the flush:
    tests/conftest.py, CONSUMER_LOCKS)."""
    settings.ANALYTICS_DOCUMENT_REFRESH_AHEAD = True
    yield
    get_redis_connection("default").delete(
        enqueue_flag_key(REFRESHER_FLAG), cache.make_key(documents._ACTIVE_KEY)
    )


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_through_the_worker_a_served_document_is_refreshed_before_any_request(
    celery_worker: object, make_client: ClientMaker, refresher_stopped_after: None
) -> None:
    # given a creator's dashboard served once (the worker runs with the suite's settings: fresh
    # period 0, max age 30 s, tick 5 s)
    creator = UserFactory.create()
    clip = world.video(creator, timezone.now() - 3 * DAY)
    consume()
    client = make_client(creator)
    key = key_of(creator.pk)
    assert likes(client)[0] == 0
    served = stored(key)
    assert served is not None
    assert active() == [key.member()] and flag() is not None

    # when a like is rolled up (the creator's version moves: the stored document is outdated)
    world.like(UserFactory.create(), clip, timezone.now() - DAY)
    consume()

    # then, without a request, the worker's refresher stores the document with the like...
    def refreshed() -> bool:
        envelope = stored(key)
        return envelope is not None and envelope["at"] > served["at"]

    assert wait_until(refreshed, timeout=30)
    current = stored(key)
    assert current is not None and current["document"]["totals"]["likes"] == 1
    # ...and the next request is a hit on it
    assert likes(client) == (1, etag_of(current))
