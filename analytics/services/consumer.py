"""The analytics consumer: reads the interaction tables and the removal and counted-flip
records past its watermarks (`analytics:<source>`) and recounts the rollups they touch.

Written with the event-log kit (core.eventlog, docs/events.md). New rows and records only mark
what they touch — (video, quarter hour), (user, quarter hour), (follower, creator) — and
`dirty_recount` recounts those from the rows and passes on the differences, so a row read twice
(the safety lag re-reads young rows), a flip and its reversal in one batch, or a flip read
before its row, all land on the same exact state. One pass is one transaction with the
watermarks and `as_of`; one consumer runs at a time (an advisory lock).

`as_of` is the time the pass started when every source was read to its end: every row
committed before it was visible to the pass's reads and is in the rollups once the pass
commits. A pass that stopped at a batch limit on any source leaves `as_of` where it was.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from analytics.documents import documents_changed
from analytics.interest_cells import interest_days_changed
from analytics.services import statements as sql
from analytics.services.rollups import (
    Dirty,
    _fetch,
    comment_groups_dirty,
    comment_keys_write,
    dirty_recount,
    play_pairs_dirty,
)
from core.eventlog import (
    EventBatch,
    consumer_lock,
    event_batch_read,
    position_as_time,
    watermark_advance,
    watermark_advance_time,
    watermark_position,
)
from engagement.models import (
    Comment,
    CountedFlip,
    Follow,
    InteractionKind,
    Like,
    Play,
    Removal,
    Share,
)

logger = logging.getLogger(__name__)

SAFETY_LAG = timedelta(seconds=5)
BATCH = 5_000
CONSUMER_LOCK = "analytics-consumer"
TASK = "analytics.tasks.process_analytics_events"
AS_OF = "analytics:as_of"
# The consumer is the only writer of its rows: a longer wait is a table lock (DDL, TRUNCATE).
LOCK_TIMEOUT_MS = 500
LOCK_NOT_AVAILABLE = "55P03"

SOURCES = {
    "likes": Like,
    "comments": Comment,
    "shares": Share,
    "plays": Play,
    "follows": Follow,
    "removals": Removal,
    "counted_flips": CountedFlip,
}


def watermark_name(source: str) -> str:
    return f"analytics:{source}"


@dataclass(frozen=True)
class Report:
    rows: int = 0
    video_buckets: int = 0
    more: bool = False


def analytics_as_of() -> "datetime | None":
    """The time up to which every committed interaction is in the rollups (None: never)."""
    position = watermark_position(AS_OF)
    return position_as_time(position) if position else None


def _batch(source: str) -> EventBatch:
    return event_batch_read(
        table=SOURCES[source]._meta.db_table,
        watermark=watermark_name(source),
        safety_lag=SAFETY_LAG,
        limit=BATCH,
    )


def _mark(source: str, batch: EventBatch, dirty: Dirty) -> None:
    bounds = {"start": batch.start, "top": batch.top}
    if source in ("likes", "shares"):
        for video, bucket, user in _fetch(sql.simple_dirty(SOURCES[source]._meta.db_table), bounds):
            dirty.video_buckets.add((video, bucket))
            dirty.user_buckets.add((user, bucket))
    elif source == "plays":
        pairs = _fetch(sql.PLAY_PAIRS_OF_BATCH, bounds)
        play_pairs_dirty(pairs=pairs, dirty=dirty)
        for video, bucket, user in _fetch(sql.simple_dirty(sql.PLAY), bounds):
            dirty.video_buckets.add((video, bucket))
            dirty.user_buckets.add((user, bucket))
    elif source == "comments":
        comment_keys_write(_fetch(sql.COMMENTS_WITHOUT_KEY, bounds))
        # every comment of the batch (young ones are read again): its (user, key) group
        ids = [
            row[0]
            for row in _fetch(
                f"SELECT id FROM {sql.COMMENT} WHERE id > %(start)s AND id <= %(top)s", bounds
            )
        ]
        comment_groups_dirty(comment_ids=ids, dirty=dirty)
    elif source == "follows":
        for user, creator, video, bucket in _fetch(sql.FOLLOWS_OF_BATCH, bounds):
            dirty.follow_pairs.add((user, creator))
            if video is not None:
                dirty.video_buckets.add((video, bucket))
    else:
        _mark_records(SOURCES[source]._meta.db_table, bounds, dirty)


def _mark_records(table: str, bounds: dict[str, int], dirty: Dirty) -> None:
    """Removals and counted flips: what the changed row touched."""
    comments: list[int] = []
    plays: list[tuple[int, int, object]] = []
    for kind, row_id, user, target, video, made_at, bucket in _fetch(
        sql.records_of_batch(table), bounds
    ):
        if kind == InteractionKind.FOLLOW:
            dirty.follow_pairs.add((user, target))
            if video is not None:
                dirty.video_buckets.add((video, bucket))
        elif kind in (InteractionKind.LIKE, InteractionKind.SHARE):
            dirty.video_buckets.add((video, bucket))
            dirty.user_buckets.add((user, bucket))
        elif kind == InteractionKind.PLAY:
            plays.append((video, user, made_at))
            dirty.video_buckets.add((video, bucket))
            dirty.user_buckets.add((user, bucket))
        elif kind == InteractionKind.COMMENT:
            comments.append(row_id)
            dirty.video_buckets.add((video, bucket))
            dirty.user_buckets.add((user, bucket))
        # comment likes feed no rollup (sticker participants are read from their rows)
    comment_groups_dirty(comment_ids=comments, dirty=dirty)
    play_pairs_dirty(pairs=plays, dirty=dirty)  # type: ignore[arg-type]


def analytics_events_process() -> Report:
    """One pass over every source; `more` when a batch was full."""
    with consumer_lock(CONSUMER_LOCK) as taken:
        if not taken:
            return Report()
        started = timezone.now()
        try:
            return _pass(started)
        except OperationalError as error:
            # Only a table lock (DDL, TRUNCATE) makes the pass wait: give way rather than
            # deadlock with it; the next wake-up or sweep does the work.
            if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            logger.warning("analytics pass gave way to a table lock")
            return Report()


def _touched_creators(dirty: Dirty) -> list[int]:
    """The creators whose documents the recount of `dirty` (done) may have changed: the dirty
    videos' creators, the followed and unfollowed creators, and the creators of every fan and
    interest cell (their followers' activity anywhere)."""
    if not dirty:
        return []
    creators = {creator for _, creator in dirty.follow_pairs}
    creators.update(creator for creator, _ in dirty.fan_cells)
    creators.update(creator for creator, _ in dirty.interest_cells)
    videos = sorted({video for video, _ in dirty.video_buckets})
    if videos:
        rows = _fetch(f"SELECT DISTINCT creator_id FROM {sql.VIDEO} WHERE id = ANY(%s)", [videos])
        creators.update(creator for (creator,) in rows)
    return sorted(creators)


def _pass(started: datetime) -> Report:
    touched: list[int] = []
    interest_days: set[tuple[int, datetime]] = set()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
        dirty = Dirty()
        batches = {}
        # Comments first: their keys must exist before a flip record looks them up.
        for source in ("comments", *[s for s in SOURCES if s != "comments"]):
            batch = _batch(source)
            batches[source] = batch
            if batch.rows:
                _mark(source, batch, dirty)
        if dirty:
            dirty_recount(dirty)
            touched = _touched_creators(dirty)
            interest_days = dirty.interest_days()
        for source, batch in batches.items():
            watermark_advance(watermark_name(source), batch.safe)
        more = any(batch.full for batch in batches.values())
        if not more:
            watermark_advance_time(AS_OF, started)
    # After the commit: a document computed from now on sees the new rollups.
    documents_changed(touched)
    interest_days_changed(interest_days)
    rows = sum(batch.rows for batch in batches.values())
    if rows:
        logger.info(
            "analytics pass", extra={"rows": rows, "video_buckets": len(dirty.video_buckets)}
        )
    return Report(rows=rows, video_buckets=len(dirty.video_buckets), more=more)
