"""Trending hashtags (docs/discovery.md "Trending hashtags"): counted interactions per hashtag
in `[end - hours, end)` against `[end - 2 hours, end - hours)`, scored as a damped surprise.

    score = (x - y) / sqrt(y + PRIOR)

Rollups, all derived from the interaction tables and rebuilt from them on demand:
- `VideoSlice(video, slice)`: a video's counted interactions in a 10-second slice and up to 3
  distinct users who made them, recomputed from the rows for exactly the (video, slice) pairs
  that new rows, counted flips and removals name;
- `TagSlice(hashtag, slice)`: the sum over the tag's videos of those slices;
- `TagHour(hashtag, hour)`: the sum of the tag's slices in the UTC hour.

A window read takes whole hours from `TagHour` and the partial hours at its three edges from
`TagSlice`; the window's end is a multiple of the slice (the consumer's `as_of`, rounded down),
so every piece lies entirely inside one window and the counts are exact. Rows older than the
longest span a request can ask for (2 x 168 h, plus the edge hour) are pruned.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from analytics.models import VideoSlice
from analytics.tables import (
    COMMENT,
    FLIP,
    FOLLOW,
    LIKE,
    REMOVAL,
    SHARE,
    TAG_HOUR,
    TAG_SLICE,
    VIDEO,
    VIDEO_HASHTAG,
)
from core.eventlog import EventBatch, sources_pass, watermark_time
from engagement.models import (
    InteractionKind,
)

PRIOR = 10
MAX_HOURS = 168
SLICE = timedelta(seconds=10)
HOUR = timedelta(hours=1)
# The oldest instant a request can read is end - 2 * MAX_HOURS; keep one more hour of margin.
RETENTION = 2 * MAX_HOURS * HOUR + HOUR
MIN_DISTINCT_USERS = 3
# Buckets are aligned to this origin (UTC), so hours are UTC hours.
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

SAFETY_LAG = timedelta(seconds=5)
BATCH = 20_000
CONSUMER_LOCK = "analytics-trending"
AS_OF = "analytics-trending:as_of"

VIDEO_SLICE = VideoSlice._meta.db_table

_SLICE_OF = "date_bin(%(slice)s, {time}, %(origin)s)"
_HOUR_OF = "date_bin(%(hour)s, {time}, %(origin)s)"
_BUCKETS: dict[str, Any] = {"slice": SLICE, "hour": HOUR, "origin": _ORIGIN}


def slice_floor(at: datetime) -> datetime:
    return _ORIGIN + ((at - _ORIGIN) // SLICE) * SLICE


def hour_floor(at: datetime) -> datetime:
    return _ORIGIN + ((at - _ORIGIN) // HOUR) * HOUR


def hour_ceil(at: datetime) -> datetime:
    floor = hour_floor(at)
    return floor if floor == at else floor + HOUR


# --- recomputing buckets from the rows ---------------------------------------------------------
_CHANGED = (
    "SELECT * FROM unnest(%(videos)s::bigint[], %(slices)s::timestamptz[]) AS c(video_id, slice)"
)


def _rewrite(table: str, key: str, time: str, changed: str, fresh: str) -> str:
    """Rewrite the buckets `(key, time)` listed by the SQL `changed` with the rows of `fresh`
    (`key, time, interactions, users`): upsert those with interactions, delete the others."""
    return f"""
        WITH changed AS ({changed}),
        fresh AS ({fresh}),
        emptied AS (
            DELETE FROM {table} t USING changed ch
            WHERE t.{key} = ch.{key} AND t.{time} = ch.{time}
              AND NOT EXISTS (
                  SELECT 1 FROM fresh f WHERE f.{key} = ch.{key} AND f.{time} = ch.{time}
              )
        )
        INSERT INTO {table} ({key}, {time}, interactions, users)
        SELECT {key}, {time}, interactions, users FROM fresh
        ON CONFLICT ({key}, {time}) DO UPDATE
            SET interactions = EXCLUDED.interactions, users = EXCLUDED.users
            WHERE ({table}.interactions, {table}.users)
                  IS DISTINCT FROM (EXCLUDED.interactions, EXCLUDED.users)
    """


def _in_slice(alias: str) -> str:
    return f"{alias}.created_at >= ch.slice AND {alias}.created_at < ch.slice + %(slice)s"


# Interactions (SPEC §3): counted likes, comments, shares and follows gained naming the video
# (a follow of the video's creator whose source is the video).
_VIDEO_SLICES_SQL = _rewrite(
    VIDEO_SLICE,
    "video_id",
    "slice",
    _CHANGED,
    f"""
    WITH events AS (
        SELECT ch.video_id, ch.slice, l.user_id FROM changed ch
        JOIN {LIKE} l ON l.video_id = ch.video_id AND {_in_slice("l")} WHERE l.counted
        UNION ALL
        SELECT ch.video_id, ch.slice, c.user_id FROM changed ch
        JOIN {COMMENT} c ON c.video_id = ch.video_id AND {_in_slice("c")} WHERE c.counted
        UNION ALL
        SELECT ch.video_id, ch.slice, s.user_id FROM changed ch
        JOIN {SHARE} s ON s.video_id = ch.video_id AND {_in_slice("s")} WHERE s.counted
        UNION ALL
        SELECT ch.video_id, ch.slice, f.user_id FROM changed ch
        JOIN {FOLLOW} f ON f.source_video_id = ch.video_id AND {_in_slice("f")}
        JOIN {VIDEO} v ON v.id = ch.video_id AND v.creator_id = f.creator_id
        WHERE f.counted
    )
    SELECT video_id, slice, count(*) AS interactions,
           (array_agg(DISTINCT user_id ORDER BY user_id))[1:{MIN_DISTINCT_USERS}] AS users
    FROM events GROUP BY video_id, slice
    """,
)


def _sum_of(members: str, key: str, time: str) -> str:
    """Sum `members` (key, time, interactions, users) per bucket; users: the smallest 3 of the
    union (exact for "at least 3 distinct": a member with fewer than 3 lists all of its own)."""
    return f"""
    WITH members AS ({members}),
    sums AS (
        SELECT {key}, {time}, sum(interactions)::bigint AS interactions
        FROM members GROUP BY {key}, {time}
    ),
    users AS (
        SELECT m.{key}, m.{time},
               (array_agg(DISTINCT u.user_id ORDER BY u.user_id))[1:{MIN_DISTINCT_USERS}] AS users
        FROM members m CROSS JOIN LATERAL unnest(m.users) AS u(user_id)
        GROUP BY m.{key}, m.{time}
    )
    SELECT s.{key}, s.{time}, s.interactions, coalesce(us.users, '{{}}') AS users
    FROM sums s LEFT JOIN users us ON us.{key} = s.{key} AND us.{time} = s.{time}
    """


_TAG_SLICES_SQL = _rewrite(
    TAG_SLICE,
    "hashtag_id",
    "slice",
    f"""
    SELECT DISTINCT vt.hashtag_id, c.slice FROM ({_CHANGED}) c
    JOIN {VIDEO_HASHTAG} vt ON vt.video_id = c.video_id
    """,
    _sum_of(
        f"""
        SELECT ch.hashtag_id, ch.slice, vs.interactions, vs.users FROM changed ch
        JOIN {VIDEO_SLICE} vs ON vs.slice = ch.slice
        JOIN {VIDEO_HASHTAG} vt ON vt.video_id = vs.video_id AND vt.hashtag_id = ch.hashtag_id
        """,
        "hashtag_id",
        "slice",
    ),
)

_TAG_HOURS_SQL = _rewrite(
    TAG_HOUR,
    "hashtag_id",
    "hour",
    f"""
    SELECT DISTINCT vt.hashtag_id, {_HOUR_OF.format(time="c.slice")} AS hour FROM ({_CHANGED}) c
    JOIN {VIDEO_HASHTAG} vt ON vt.video_id = c.video_id
    """,
    _sum_of(
        f"""
        SELECT ch.hashtag_id, ch.hour, ts.interactions, ts.users FROM changed ch
        JOIN {TAG_SLICE} ts ON ts.hashtag_id = ch.hashtag_id
            AND ts.slice >= ch.hour AND ts.slice < ch.hour + %(hour)s
        """,
        "hashtag_id",
        "hour",
    ),
)


def buckets_recompute(*, video_ids: list[int], times: list[datetime]) -> None:
    """Recompute the buckets holding these (video, time) pairs from the rows: the videos'
    slices, then their hashtags' slices and hours. Idempotent; run it in a transaction."""
    if not video_ids:
        return
    pairs = sorted({(video, slice_floor(at)) for video, at in zip(video_ids, times, strict=True)})
    params = {**_BUCKETS, "videos": [p[0] for p in pairs], "slices": [p[1] for p in pairs]}
    with connection.cursor() as cursor:
        for statement in (_VIDEO_SLICES_SQL, _TAG_SLICES_SQL, _TAG_HOURS_SQL):
            cursor.execute(statement, params)


def buckets_prune(*, now: datetime) -> None:
    cutoff = now - RETENTION
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {VIDEO_SLICE} WHERE slice < %s", [cutoff])
        cursor.execute(f"DELETE FROM {TAG_SLICE} WHERE slice < %s", [cutoff])
        cursor.execute(f"DELETE FROM {TAG_HOUR} WHERE hour < %s", [hour_floor(cutoff)])


def trending_rebuild(*, now: datetime | None = None) -> None:
    """Every bucket of the retained span from the rows (set-based; the same statements over
    every (video, slice) that has a counted interaction)."""
    now = now or timezone.now()
    since = now - RETENTION
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [CONSUMER_LOCK])
        for table in (VIDEO_SLICE, TAG_SLICE, TAG_HOUR):
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(
            f"""
            SELECT coalesce(array_agg(video_id), '{{}}'), coalesce(array_agg(at), '{{}}') FROM (
                SELECT video_id, created_at AS at FROM {LIKE} WHERE counted AND created_at >= %s
                UNION SELECT video_id, created_at FROM {COMMENT} WHERE counted AND created_at >= %s
                UNION SELECT video_id, created_at FROM {SHARE} WHERE counted AND created_at >= %s
                UNION SELECT source_video_id, created_at FROM {FOLLOW}
                    WHERE counted AND created_at >= %s AND source_video_id IS NOT NULL
            ) rows
            """,
            [since] * 4,
        )
        videos, times = cursor.fetchone()
        buckets_recompute(video_ids=list(videos), times=list(times))


# --- the consumer --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    name: str
    table: str
    video: str  # the column naming the video
    time: str  # the interaction's own time
    relevant: str  # which rows matter, over the table aliased `e`


_INTERACTION_KINDS = ", ".join(
    f"'{kind.value}'"
    for kind in (
        InteractionKind.LIKE,
        InteractionKind.COMMENT,
        InteractionKind.SHARE,
        InteractionKind.FOLLOW,
    )
)
SOURCES = [
    Source("likes", LIKE, "video_id", "created_at", "TRUE"),
    Source("comments", COMMENT, "video_id", "created_at", "TRUE"),
    Source("shares", SHARE, "video_id", "created_at", "TRUE"),
    Source("follows", FOLLOW, "source_video_id", "created_at", "TRUE"),
    Source(
        "counted_flips",
        FLIP,
        "video_id",
        "interaction_created_at",
        f"e.kind IN ({_INTERACTION_KINDS})",
    ),
    Source(
        "removals",
        REMOVAL,
        "video_id",
        "interaction_created_at",
        f"e.kind IN ('{InteractionKind.LIKE.value}', '{InteractionKind.FOLLOW.value}')",
    ),
]


WATERMARK_PREFIX = "analytics-trending"


def watermark_name(source: str) -> str:
    return f"{WATERMARK_PREFIX}:{source}"


@dataclass
class TrendingReport:
    buckets: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    more: bool = False


def _changed_of(source: Source, start: int, top: int, since: datetime) -> tuple[list, list]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT coalesce(array_agg(e.{source.video}), '{{}}'),
                   coalesce(array_agg(e.{source.time}), '{{}}')
            FROM {source.table} e
            WHERE e.id > %s AND e.id <= %s AND e.{source.video} IS NOT NULL
              AND e.{source.time} >= %s AND {source.relevant}
            """,
            [start, top, since],
        )
        videos, times = cursor.fetchone()
    return list(videos), list(times)


def trending_events_process() -> TrendingReport:
    """One pass of the trending consumer over every source; safe to run twice, one at a time."""
    by_name = {source.name: source for source in SOURCES}
    oldest: list[datetime] = []

    def prune(read_at: datetime) -> None:
        buckets_prune(now=read_at)
        oldest.append(read_at - RETENTION)

    def apply(name: str, batch: EventBatch) -> int:
        videos, times = _changed_of(by_name[name], batch.start, batch.top, oldest[0])
        buckets_recompute(video_ids=videos, times=times)
        return len(videos)

    done = sources_pass(
        lock=CONSUMER_LOCK,
        sources=[(source.name, source.table) for source in SOURCES],
        watermark_prefix=WATERMARK_PREFIX,
        apply=apply,
        safety_lag=SAFETY_LAG,
        limit=BATCH,
        as_of=AS_OF,
        before=prune,
    )
    return TrendingReport(buckets=done.applied, rows=done.rows, more=done.more)


def trending_as_of() -> datetime:
    """The end of the windows served now: every committed interaction before it is counted."""
    return slice_floor(watermark_time(AS_OF))
