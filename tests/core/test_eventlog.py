"""The event-log consumer kit (core.eventlog) against the real PostgreSQL.

The batch reads run over a scratch event table created in the test's transaction (rolled back
with it), so they depend on no app's tables.
"""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.eventlog import (
    EventBatch,
    SourcesPass,
    consumer_lock,
    event_batch_read,
    position_as_time,
    sources_pass,
    time_safe,
    watermark_advance,
    watermark_advance_time,
    watermark_position,
    watermark_time,
)
from core.models import Watermark

pytestmark = pytest.mark.django_db

TABLE = "test_eventlog_events"
LAG = timedelta(seconds=5)


@pytest.fixture
def events() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {TABLE} (id bigserial PRIMARY KEY, user_id bigint, "
            f"video_id bigint, created_at timestamptz NOT NULL)"
        )


def _append(user_id: int, *, age: timedelta, video_id: int | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (user_id, video_id, created_at) VALUES (%s, %s, %s) RETURNING id",
            [user_id, video_id, timezone.now() - age],
        )
        return int(cursor.fetchone()[0])


def _read(limit: int = 100, columns: tuple[str, ...] = ("user_id",)) -> EventBatch:
    return event_batch_read(
        table=TABLE, watermark="test:events", columns=columns, safety_lag=LAG, limit=limit
    )


# --- batch read -----------------------------------------------------------------------------------
def test_a_batch_lets_the_watermark_pass_only_rows_older_than_the_safety_lag(events: None) -> None:
    # given three rows older than the lag and two younger ones
    old = [_append(user, age=timedelta(minutes=10)) for user in (1, 2, 1)]
    young = [_append(user, age=timedelta(seconds=1)) for user in (3, 2)]

    # when the consumer reads past its (new) watermark
    batch = _read()

    # then it reads all five, but may only move past the old ones
    assert batch == EventBatch(
        start=0, top=young[-1], safe=old[-1], rows=5, distinct={"user_id": [1, 2, 3]}, full=False
    )
    assert watermark_position("test:events") == 0  # created at 0; reading moves nothing

    # and after advancing, the young rows are read again (and nothing is passed yet)
    assert watermark_advance("test:events", batch.safe) is True
    again = _read()
    assert again == EventBatch(
        start=old[-1], top=young[-1], safe=old[-1], rows=2, distinct={"user_id": [2, 3]}
    )


def test_an_empty_read_stays_where_it_is(events: None) -> None:
    assert _read() == EventBatch(start=0, top=0, safe=0, rows=0, distinct={"user_id": []})


def test_distinct_values_per_column_leave_out_nulls(events: None) -> None:
    _append(7, age=timedelta(minutes=1), video_id=70)
    _append(7, age=timedelta(minutes=1))
    _append(8, age=timedelta(minutes=1), video_id=70)

    batch = _read(columns=("user_id", "video_id"))

    assert batch.distinct == {"user_id": [7, 8], "video_id": [70]}


def test_a_full_batch_of_young_rows_is_passed_rather_than_read_forever(events: None) -> None:
    # given more young rows than one batch holds
    young = [_append(user, age=timedelta(seconds=1)) for user in (1, 2, 3, 4)]

    # when a batch of 3 is read, all younger than the lag
    batch = _read(limit=3)

    # then it is full and the watermark may move to its end (the escape)
    assert batch == EventBatch(
        start=0, top=young[2], safe=young[2], rows=3, distinct={"user_id": [1, 2, 3]}, full=True
    )


def test_a_full_batch_with_an_old_row_moves_only_past_that_row(events: None) -> None:
    old = _append(1, age=timedelta(minutes=1))
    young = [_append(user, age=timedelta(seconds=1)) for user in (2, 3)]

    batch = _read(limit=3)

    assert (batch.full, batch.top, batch.safe) == (True, young[-1], old)


# --- watermarks -----------------------------------------------------------------------------------
def test_a_watermark_never_moves_back() -> None:
    assert watermark_position("test:forward") == 0

    assert watermark_advance("test:forward", 10) is True
    assert watermark_advance("test:forward", 5) is False
    assert watermark_advance("test:forward", 10) is False
    assert watermark_position("test:forward") == 10
    assert watermark_advance("test:forward", 11) is True

    assert list(Watermark.objects.filter(name="test:forward").values_list("position")) == [(11,)]


def test_advancing_a_watermark_never_read_creates_it() -> None:
    assert watermark_advance("test:unread", 3) is True
    assert Watermark.objects.get(name="test:unread").position == 3


def test_a_time_watermark_keeps_the_exact_microsecond_and_never_moves_back() -> None:
    at = datetime(2026, 3, 10, 12, 0, 0, 123457, tzinfo=UTC)
    assert watermark_time("test:finals") == datetime(1970, 1, 1, tzinfo=UTC)

    assert watermark_advance_time("test:finals", at) is True
    assert watermark_advance_time("test:finals", at - timedelta(microseconds=1)) is False

    assert watermark_time("test:finals") == at
    assert position_as_time(Watermark.objects.get(name="test:finals").position) == at


def test_time_safe_is_the_latest_time_older_than_the_lag_at_the_read() -> None:
    read_at = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
    times = [read_at - timedelta(seconds=s) for s in (1, 30, 6, 4)]

    assert time_safe(times, safety_lag=LAG, read_at=read_at) == read_at - timedelta(seconds=6)
    assert time_safe(times[:1], safety_lag=LAG, read_at=read_at) is None
    assert time_safe([], safety_lag=LAG, read_at=read_at) is None


# --- one consumer at a time -----------------------------------------------------------------------
def test_the_consumer_lock_lets_exactly_one_of_two_concurrent_holders_in() -> None:
    # two threads, each on its own database session, try at the same moment and hold what they
    # got until both have tried
    tried = threading.Barrier(2)
    start = threading.Barrier(2)
    taken: list[bool] = []
    errors: list[BaseException] = []

    def consumer() -> None:
        try:
            start.wait(timeout=30)
            with consumer_lock("test-consumer") as got_it:
                taken.append(got_it)
                tried.wait(timeout=30)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=consumer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(taken) == [False, True]
    # and the holder released it on leaving: the next pass gets it
    with consumer_lock("test-consumer") as got_it:
        assert got_it is True


def test_the_consumer_lock_is_released_when_the_pass_fails() -> None:
    with pytest.raises(RuntimeError), consumer_lock("test-failing"):
        raise RuntimeError("the pass failed")

    held: list[bool] = []

    def other_session() -> None:
        try:
            with consumer_lock("test-failing") as got_it:
                held.append(got_it)
        finally:
            connection.close()

    thread = threading.Thread(target=other_session)
    thread.start()
    thread.join(timeout=30)
    assert held == [True]


# --- a pass over several sources ------------------------------------------------------------------
def _pass(apply: Callable[[str, EventBatch], int]) -> SourcesPass:
    return sources_pass(
        lock="test-sources-pass",
        sources=[("events", TABLE)],
        watermark_prefix="test-pass",
        apply=apply,
        safety_lag=LAG,
        limit=100,
        as_of="test-pass:as_of",
    )


def test_a_pass_applies_each_new_batch_then_moves_its_watermark_and_the_as_of(
    events: None,
) -> None:
    # given two old rows
    ids = [_append(user, age=timedelta(minutes=10)) for user in (1, 2)]
    seen: list[tuple[str, int, int]] = []

    def apply(name: str, batch: EventBatch) -> int:
        seen.append((name, batch.start, batch.top))
        return 2

    # when a pass runs
    before = timezone.now()
    done = _pass(apply)

    # then the batch was applied once, its watermark passed it, and as_of is the read minus lag
    assert (done.ran, done.rows, done.applied, done.more) == (True, {"events": 2}, 2, False)
    assert seen == [("events", 0, ids[-1])]
    assert watermark_position("test-pass:events") == ids[-1]
    assert before - LAG <= watermark_time("test-pass:as_of") <= timezone.now() - LAG
    # and a second pass finds nothing new
    assert _pass(lambda name, batch: 1).rows == {"events": 0}


def test_a_failing_apply_leaves_the_watermark_where_it_was(events: None) -> None:
    _append(1, age=timedelta(minutes=10))

    def fail(name: str, batch: EventBatch) -> int:
        raise RuntimeError("crash mid-apply")

    with pytest.raises(RuntimeError):
        _pass(fail)

    assert watermark_position("test-pass:events") == 0
