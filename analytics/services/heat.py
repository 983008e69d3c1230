"""The heat of a video (docs/discovery.md "Heat"): a Reddit-style log-of-points plus publishing
time, so heat changes only when a video's counted likes or comments change, never with the clock.

    points = likes + DEPTH * deep_likes + VELOCITY * first_hour_likes
    heat   = log10(max(points, 1)) + (published_at - T0) / TAU

`VideoHeat` holds one row per video. The consumer (`heat_events_process`) recomputes, from the
rows, exactly the videos named by new likes, new comments, counted flips of likes and comments,
and removals of likes past its watermarks: cost proportional to the videos that changed.
`heat_rebuild` rewrites every video's row in one `INSERT … SELECT … ON CONFLICT DO UPDATE`.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction

from analytics.models import VideoHeat
from analytics.tables import COMMENT, FLIP, LIKE, REMOVAL, VIDEO
from core.eventlog import EventBatch, sources_pass, watermark_time
from engagement.models import InteractionKind

DEPTH = 1
VELOCITY = 1
FIRST_HOUR = timedelta(hours=1)
TAU_SECONDS = 45_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)

SAFETY_LAG = timedelta(seconds=5)
BATCH = 20_000
CONSUMER_LOCK = "analytics-heat"
# The time up to which every committed like and comment is in the heat (the `as_of`).
AS_OF = "analytics-heat:as_of"

HEAT = VideoHeat._meta.db_table


def heat_of(*, points: int, published_at: datetime) -> float:
    """The formula in Python, as the database computes it (same IEEE operations)."""
    return math.log10(max(points, 1)) + (published_at - T0).total_seconds() / TAU_SECONDS


def _heat_write(rows: str) -> str:
    """Write the heat of `rows` (SQL with video_id, published_at, likes, deep_likes,
    first_hour_likes, points), rewriting only the rows that change."""
    return f"""
        INSERT INTO {HEAT}
            (video_id, published_at, likes, deep_likes, first_hour_likes, points, heat, updated_at)
        SELECT video_id, published_at, likes, deep_likes, first_hour_likes, points,
               log(greatest(points, 1)::double precision)
               + extract(epoch FROM published_at - %(t0)s)::double precision
                 / %(tau)s::double precision,
               now()
        FROM {rows}
        ON CONFLICT (video_id) DO UPDATE SET
            likes = EXCLUDED.likes, deep_likes = EXCLUDED.deep_likes,
            first_hour_likes = EXCLUDED.first_hour_likes, points = EXCLUDED.points,
            heat = EXCLUDED.heat, published_at = EXCLUDED.published_at,
            updated_at = EXCLUDED.updated_at
        WHERE ({HEAT}.points, {HEAT}.likes, {HEAT}.deep_likes, {HEAT}.first_hour_likes,
               {HEAT}.heat)
              IS DISTINCT FROM (EXCLUDED.points, EXCLUDED.likes, EXCLUDED.deep_likes,
                                EXCLUDED.first_hour_likes, EXCLUDED.heat)
    """


def _heat_upsert(videos: str) -> str:
    """Rewrite the VideoHeat rows of the videos selected by the SQL `videos` (a set of ids).

    Deep likes: a counted like whose user has a counted comment on the video (one semi-join
    per like, on the commenters of the video). First hour: [published_at, published_at + 1 h).
    """
    return f"""
        WITH chosen AS ({videos}),
        commenters AS (
            SELECT DISTINCT c.video_id, c.user_id FROM {COMMENT} c
            WHERE c.counted AND c.video_id IN (SELECT id FROM chosen)
        ),
        counts AS (
            SELECT l.video_id,
                   count(*) AS likes,
                   count(cm.user_id) AS deep_likes,
                   count(*) FILTER (WHERE l.created_at >= v.created_at
                                      AND l.created_at < v.created_at + %(first_hour)s)
                       AS first_hour_likes
            FROM {LIKE} l
            JOIN {VIDEO} v ON v.id = l.video_id
            LEFT JOIN commenters cm ON cm.video_id = l.video_id AND cm.user_id = l.user_id
            WHERE l.counted AND l.video_id IN (SELECT id FROM chosen)
            GROUP BY l.video_id
        ),
        scored AS (
            SELECT v.id AS video_id, v.created_at AS published_at,
                   coalesce(n.likes, 0) AS likes,
                   coalesce(n.deep_likes, 0) AS deep_likes,
                   coalesce(n.first_hour_likes, 0) AS first_hour_likes,
                   coalesce(n.likes + %(depth)s * n.deep_likes
                            + %(velocity)s * n.first_hour_likes, 0) AS points
            FROM {VIDEO} v LEFT JOIN counts n ON n.video_id = v.id
            WHERE v.id IN (SELECT id FROM chosen)
        )
        {_heat_write("scored")}
    """


_PARAMETERS: dict[str, Any] = {
    "first_hour": FIRST_HOUR,
    "depth": DEPTH,
    "velocity": VELOCITY,
    "t0": T0,
    "tau": TAU_SECONDS,
}
_RECOMPUTE_SQL = _heat_upsert("SELECT unnest(%(videos)s::bigint[]) AS id")

# The rebuild: every video's counts into a temporary table, then one upsert from it
# (docs/discovery.md, "Rebuild"). `CREATE TABLE AS` may use parallel workers where an
# `INSERT … SELECT` may not, and the counts come from one ordered pass that hashes and sorts
# nothing: the likes' unique index (user, video, INCLUDE counted) merge-joined with the distinct
# counted commenters read from `comment_user_video_idx` in the same order — every counted like
# once, deep when its (user, video) has a counted comment. The first hour is one range scan of
# `like_video_time_idx` per video. `_REBUILD_PLAN` keeps the planner on that shape (its
# estimates favour sorting both sides by video for the GROUP BY, 3.5x slower here).
_REBUILD_PLAN = (
    "SET LOCAL jit = off",
    "SET LOCAL enable_seqscan = off",
    "SET LOCAL enable_sort = off",
    "SET LOCAL enable_hashjoin = off",
)
_REBUILD_COUNTS = f"""
    CREATE TEMPORARY TABLE analytics_heat_fresh ON COMMIT DROP AS
    WITH counted AS (
        SELECT l.video_id, count(*) AS likes, count(c.user_id) AS deep_likes
        FROM {LIKE} l
        LEFT JOIN (SELECT DISTINCT user_id, video_id FROM {COMMENT} WHERE counted) c
            ON c.user_id = l.user_id AND c.video_id = l.video_id
        WHERE l.counted
        GROUP BY l.video_id
    )
    SELECT v.id AS video_id, v.created_at AS published_at,
           coalesce(n.likes, 0) AS likes, coalesce(n.deep_likes, 0) AS deep_likes,
           h.first_hour_likes
    FROM {VIDEO} v
    LEFT JOIN counted n ON n.video_id = v.id
    CROSS JOIN LATERAL (
        SELECT count(*) AS first_hour_likes FROM {LIKE} f
        WHERE f.video_id = v.id AND f.counted AND f.created_at >= v.created_at
          AND f.created_at < v.created_at + %(first_hour)s
    ) h
"""
_REBUILD_SQL = _heat_write(
    "(SELECT *, likes + %(depth)s * deep_likes + %(velocity)s * first_hour_likes AS points"
    " FROM analytics_heat_fresh) fresh"
)


def heat_recompute(*, video_ids: list[int]) -> int:
    """Rewrite the heat of these videos from their rows; the number of rows that changed."""
    if not video_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(_RECOMPUTE_SQL, {**_PARAMETERS, "videos": sorted(set(video_ids))})
        return cursor.rowcount


def heat_rebuild() -> int:
    """Every video's heat from the rows, in one statement; the number of rows written."""
    # Hold the consumer's lock (it skips its pass meanwhile): a rebuild computed from a
    # snapshot older than a pass that commits first would overwrite newer rows.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [CONSUMER_LOCK])
        for setting in _REBUILD_PLAN:
            cursor.execute(setting)
        cursor.execute(_REBUILD_COUNTS, _PARAMETERS)
        cursor.execute(_REBUILD_SQL, _PARAMETERS)
        return cursor.rowcount


# --- the consumer --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """An event table and how its rows name the videos whose heat they change."""

    name: str
    table: str
    # SQL over the table aliased `e`: the rows of the batch that can change a video's heat.
    relevant: str


SOURCES = [
    Source("likes", LIKE, "TRUE"),
    # A new comment can turn its author's like of the video into a deep like.
    Source("comments", COMMENT, "TRUE"),
    Source(
        "counted_flips",
        FLIP,
        f"e.kind IN ('{InteractionKind.LIKE.value}', '{InteractionKind.COMMENT.value}')",
    ),
    Source("removals", REMOVAL, f"e.kind = '{InteractionKind.LIKE.value}'"),
]


WATERMARK_PREFIX = "analytics-heat"


def watermark_name(source: str) -> str:
    return f"{WATERMARK_PREFIX}:{source}"


@dataclass
class HeatReport:
    videos: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    more: bool = False


def _videos_of(source: Source, start: int, top: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(array_agg(DISTINCT e.video_id), '{{}}') FROM {source.table} e "
            f"WHERE e.id > %s AND e.id <= %s AND e.video_id IS NOT NULL AND {source.relevant}",
            [start, top],
        )
        return list(cursor.fetchone()[0])


def heat_events_process() -> HeatReport:
    """One pass of the heat consumer over every source; safe to run twice, one at a time."""
    by_name = {source.name: source for source in SOURCES}

    def apply(name: str, batch: EventBatch) -> int:
        videos = _videos_of(by_name[name], batch.start, batch.top)
        heat_recompute(video_ids=videos)
        return len(videos)

    done = sources_pass(
        lock=CONSUMER_LOCK,
        sources=[(source.name, source.table) for source in SOURCES],
        watermark_prefix=WATERMARK_PREFIX,
        apply=apply,
        safety_lag=SAFETY_LAG,
        limit=BATCH,
        as_of=AS_OF,
    )
    return HeatReport(videos=done.applied, rows=done.rows, more=done.more)


def heat_as_of() -> datetime:
    return watermark_time(AS_OF)
