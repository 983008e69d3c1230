"""The event-log consumer kit: read append-only tables past a watermark, one consumer at a time.

STYLE: a lower app never calls a higher one; the interaction tables are the event log and a
higher app's consumer reads them past its watermarks (docs/events.md). A consumer pass:

    with consumer_lock("rewards-consumer") as taken:
        if not taken:
            return  # another worker is on it
        batch = event_batch_read(table=..., watermark="rewards:likes", columns=["user_id"],
                                 safety_lag=SAFETY_LAG, limit=BATCH)
        with transaction.atomic():
            ...  # idempotent effects of the rows in (batch.start, batch.top]
            watermark_advance("rewards:likes", batch.safe)

Ids are taken when a row is inserted, not when it commits: a transaction holding a lower id can
commit after a higher one is visible. So a watermark moves only past rows older than the safety
lag; younger rows are read again next pass (the effects must be idempotent), and nothing is
skipped. Watermarks never move back.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.models import Watermark

# Time watermarks count microseconds since this instant (exact integer arithmetic).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class EventBatch:
    """Rows of an event table past a watermark, read in id order (at most `limit` of them)."""

    # The watermark the batch was read past: its rows have ids in (start, top].
    start: int
    top: int
    # Where the watermark may move: past the rows older than the safety lag (or to `top` when
    # a full batch was all younger than the lag: moving on beats re-reading it forever).
    safe: int
    rows: int
    # Per requested column, its distinct non-null values among the rows.
    distinct: dict[str, list[Any]] = field(default_factory=dict)
    full: bool = False


def event_batch_read(
    *,
    table: str,
    watermark: str,
    columns: Sequence[str] = (),
    safety_lag: timedelta,
    limit: int,
    time_column: str = "created_at",
) -> EventBatch:
    """Read up to `limit` rows of `table` with id above the watermark `watermark`.

    One statement: the count, the highest id, the highest id older than `safety_lag` (by
    `time_column`) and the distinct values of `columns`. The watermark row is created at 0 the
    first time.
    """
    start = watermark_position(watermark)
    quote = connection.ops.quote_name
    selected = ", ".join(f"{quote(column)} AS c{index}" for index, column in enumerate(columns))
    aggregates = "".join(
        f", coalesce(array_agg(DISTINCT c{index}) FILTER (WHERE c{index} IS NOT NULL), '{{}}')"
        for index in range(len(columns))
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH batch AS (
                SELECT id, {quote(time_column)} AS event_time{", " if columns else ""}{selected}
                FROM {quote(table)} WHERE id > %s ORDER BY id LIMIT %s
            )
            SELECT count(*), coalesce(max(id), %s),
                   coalesce(max(id) FILTER (WHERE event_time < %s), 0){aggregates}
            FROM batch
            """,
            [start, limit, start, timezone.now() - safety_lag],
        )
        rows, top, safe, *values = cursor.fetchone()
    rows, top, safe = int(rows), int(top), int(safe)
    full = rows >= limit
    if full and safe <= start:
        safe = top
    return EventBatch(
        start=start,
        top=top,
        safe=max(safe, start),
        rows=rows,
        distinct={column: list(value) for column, value in zip(columns, values, strict=True)},
        full=full,
    )


def watermark_position(name: str) -> int:
    """The watermark's position (created at 0 the first time it is asked for)."""
    return Watermark.objects.get_or_create(name=name)[0].position


def watermark_advance(name: str, position: int) -> bool:
    """Move the watermark forward to `position`; never back. True when it moved.

    Run it in the transaction that wrote the effects of the rows it passes, so both commit or
    neither does.
    """
    table = connection.ops.quote_name(Watermark._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (name, position, updated_at) VALUES (%s, %s, now())
            ON CONFLICT (name) DO UPDATE
                SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
                WHERE {table}.position < EXCLUDED.position
            """,
            [name, position],
        )
        return cursor.rowcount > 0


# --- sources read by time (rows that change state rather than rows appended) -----------------
def watermark_time(name: str) -> datetime:
    """A watermark kept as a time (microseconds since the epoch); the epoch the first time."""
    return position_as_time(watermark_position(name))


def position_as_time(position: int) -> datetime:
    """The time a time watermark's position stands for (for readers such as lag metrics)."""
    return _EPOCH + position * _MICROSECOND


def watermark_advance_time(name: str, at: datetime) -> bool:
    """Move a time watermark forward to `at`; never back. True when it moved."""
    return watermark_advance(name, (at - _EPOCH) // _MICROSECOND)


def time_safe(
    times: Sequence[datetime], *, safety_lag: timedelta, read_at: datetime
) -> datetime | None:
    """How far a time watermark may move: the latest of `times` older than the safety lag.

    `read_at` is when the rows were read (taken before the read): a row that was not visible
    then may carry a time up to the lag before it, never later.
    """
    limit = read_at - safety_lag
    passed = [at for at in times if at < limit]
    return max(passed) if passed else None


# --- one consumer at a time -------------------------------------------------------------------
@contextmanager
def consumer_lock(name: str) -> Iterator[bool]:
    """Try to take the consumer's PostgreSQL advisory lock; yields whether it was taken.

    Not blocking: a worker that does not get it skips the pass (the holder is doing the work).
    The lock belongs to the database session, so a worker that dies releases it with its
    connection. Take it outside a transaction that may fail: releasing needs a usable one.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [name])
        taken = bool(cursor.fetchone()[0])
    try:
        yield taken
    finally:
        if taken:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])


@dataclass
class SourcesPass:
    """What one pass over several event tables did (see `sources_pass`)."""

    # Rows read per source name, and the sum of what `apply` returned.
    rows: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    # A source had a full batch: run again soon.
    more: bool = False
    # False when another worker held the lock and this pass did nothing.
    ran: bool = False


def sources_pass(
    *,
    lock: str,
    sources: Sequence[tuple[str, str]],
    watermark_prefix: str,
    apply: Callable[[str, EventBatch], int],
    safety_lag: timedelta,
    limit: int,
    as_of: str | None = None,
    before: Callable[[datetime], None] | None = None,
) -> SourcesPass:
    """One consumer pass over several tables, each past its own watermark.

    `sources` are (name, table) pairs; the watermark of each is `{watermark_prefix}:{name}`.
    Under `consumer_lock(lock)`: for each source with new rows, `apply(name, batch)` and the
    watermark's advance run in one transaction (a crash rolls both back; the rows are read
    again). `before(read_at)` runs first (housekeeping such as pruning). When no source had a
    full batch, the time watermark `as_of` moves to `read_at - safety_lag`: every row committed
    before then has been applied.
    """
    report = SourcesPass()
    with consumer_lock(lock) as taken:
        if not taken:
            return report
        report.ran = True
        read_at = timezone.now()
        if before is not None:
            before(read_at)
        for name, table in sources:
            watermark = f"{watermark_prefix}:{name}"
            batch = event_batch_read(
                table=table, watermark=watermark, safety_lag=safety_lag, limit=limit
            )
            report.rows[name] = batch.rows
            report.more = report.more or batch.full
            if not batch.rows:
                continue
            with transaction.atomic():
                report.applied += apply(name, batch)
                watermark_advance(watermark, batch.safe)
        if as_of is not None and not report.more:
            watermark_advance_time(as_of, read_at - safety_lag)
    return report
