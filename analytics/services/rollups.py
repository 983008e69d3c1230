"""Writing the rollups: recounting dirty keys, keeping FanLink in step with the follows,
computing comment keys, and the rebuilds. Every incremental function here is set-based and
idempotent: it recounts from the rows and writes only what differs, so running it twice, or on
an event already applied, changes nothing.

The video side passes deltas up (a video bucket's change goes to its creator's bucket and the
video's total). The fan side has no per-user tier (one would be nearly as fine as the rows):
a creator's fan cell (creator, quarter hour) and interest cell (creator, UTC day) are recounted
from the rows whenever a row of a follower in it, or the follow itself, changes.

The full rebuild does not go through the keyed recounts: it truncates the rollups and fills
each table with one `INSERT ... SELECT ... GROUP BY` over whole tables, in dependency order.
"""

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction

from analytics.comments import comment_is_hollow, comment_repeat_key
from analytics.documents import documents_all_changed
from analytics.models import (
    CreatorBucket,
    CreatorFanBucket,
    CreatorHashtagDay,
    FanLink,
    VideoBucket,
    VideoTotal,
)
from analytics.services import columnar
from analytics.services import statements as sql

logger = logging.getLogger(__name__)

VideoBucketKey = tuple[int, datetime]
UserBucketKey = tuple[int, datetime]
FollowPair = tuple[int, int]
FanCell = tuple[int, datetime]  # (creator, quarter hour)
InterestCell = tuple[int, datetime]  # (creator, UTC day)

_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def day_floor(at: datetime) -> datetime:
    """The UTC midnight at or before `at` (as `statements.day_of`)."""
    return at - (at - _EPOCH) % _DAY


@dataclass
class Dirty:
    """What a pass must recount: (video, bucket), (follower, creator), and the fan side's
    cells. `user_buckets` (user, bucket) is a user's activity: it dirties the fan cell (and
    interest cell) of every creator the user follows once the links are synced."""

    video_buckets: set[VideoBucketKey] = field(default_factory=set)
    user_buckets: set[UserBucketKey] = field(default_factory=set)
    follow_pairs: set[FollowPair] = field(default_factory=set)
    fan_cells: set[FanCell] = field(default_factory=set)
    interest_cells: set[InterestCell] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(
            self.video_buckets
            or self.user_buckets
            or self.follow_pairs
            or self.fan_cells
            or self.interest_cells
        )

    def interest_days(self) -> set[InterestCell]:
        """The interest cells a recount of this writes (`interest_days`)."""
        return interest_days(fan_cells=self.fan_cells, interest_cells=self.interest_cells)


def interest_days(
    *, fan_cells: set[FanCell], interest_cells: set[InterestCell]
) -> set[InterestCell]:
    """The interest cells a recount writes: the named ones and the day of every fan cell."""
    return interest_cells | {(creator, day_floor(bucket)) for creator, bucket in fan_cells}


def _fetch(statement: str, params: Any) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


def _execute(statement: str, params: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def repeat_key_hash(text: str) -> bytes:
    return hashlib.sha256(comment_repeat_key(text).encode()).digest()


def comment_keys_write(rows: Iterable[tuple[int, int, int, datetime, str]]) -> list[int]:
    """Compute the Unicode rules once per comment (id, user, video, created_at, text) and write
    the keys with one statement (arrays, not one ORM object per comment: at a rebuild's
    hundreds of thousands of comments the objects cost more than the rules)."""
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for comment_id, user_id, video_id, created_at, text in rows:
        for column, value in zip(
            columns,
            (
                comment_id,
                user_id,
                video_id,
                created_at,
                repeat_key_hash(text),
                comment_is_hollow(text),
            ),
            strict=True,
        ):
            column.append(value)
    if columns[0]:
        _execute(sql.COMMENT_KEYS_INSERT, list(columns))
    return columns[0]


def comment_groups_dirty(*, comment_ids: list[int], dirty: Dirty) -> None:
    if not comment_ids:
        return
    for video_id, bucket, user_id in _fetch(sql.COMMENT_GROUPS_DIRTY, {"comments": comment_ids}):
        dirty.video_buckets.add((video_id, bucket))
        dirty.user_buckets.add((user_id, bucket))


def play_pairs_dirty(*, pairs: list[tuple[int, int, datetime]], dirty: Dirty) -> None:
    """(video, user, since): the pair's plays from `since` on and its like."""
    if not pairs:
        return
    rows = _fetch(
        sql.PLAY_PAIRS_DIRTY,
        {
            "videos": [video for video, _, _ in pairs],
            "users": [user for _, user, _ in pairs],
            "since": [since for _, _, since in pairs],
        },
    )
    dirty.video_buckets.update((video, bucket) for video, bucket in rows)


def fan_links_sync(*, pairs: set[FollowPair], dirty: Dirty) -> int:
    """Make FanLink match the counted follows of `pairs`. A link made (undone) moves the
    follower's whole activity into (out of) the creator's grid and interests: every quarter
    hour in which the follower has a row becomes a dirty fan cell of the creator; the follower's
    events on the creator's videos change those video buckets' `follower_events`."""
    if not pairs:
        return 0
    ordered = sorted(pairs)
    changes = _fetch(
        sql.FAN_LINKS_SYNC,
        {"users": [user for user, _ in ordered], "creators": [creator for _, creator in ordered]},
    )
    if not changes:
        return 0
    params = {
        "users": [user for user, _, _ in changes],
        "creators": [creator for _, creator, _ in changes],
        "signs": [sign for _, _, sign in changes],
    }
    dirty.fan_cells.update(_fetch(sql.FAN_CELLS_OF_LINKS, params))
    dirty.video_buckets.update(
        (video, bucket) for video, bucket in _fetch(sql.LINK_VIDEO_BUCKETS, params)
    )
    return len(changes)


def fan_cells_recount(*, fan_cells: set[FanCell], interest_cells: set[InterestCell]) -> None:
    """Recount the fan cells and the interest cells (plus the day of every fan cell)."""
    days = interest_days(fan_cells=fan_cells, interest_cells=interest_cells)
    if fan_cells:
        cells = sorted(fan_cells)
        _execute(
            sql.FAN_CELLS_RECOUNT,
            {"creators": [c for c, _ in cells], "buckets": [b for _, b in cells]},
        )
    if days:
        cells = sorted(days)
        _execute(
            sql.INTEREST_CELLS_RECOUNT,
            {"creators": [c for c, _ in cells], "days": [d for _, d in cells]},
        )


def dirty_recount(dirty: Dirty) -> None:
    """Recount what `dirty` names, in the order the recounts need. The users' activity is
    turned into fan cells with the links as they were (a link undone in this pass still names
    the cells its follower's deleted rows were counted in; a link made names all its follower's
    rows itself), then the links are synced (so the video buckets' follower counts and the
    cells see the new links), then the fan and interest cells, the video buckets and their
    first hours are recounted."""
    if dirty.user_buckets:
        users = sorted(dirty.user_buckets)
        dirty.fan_cells.update(
            _fetch(
                sql.FAN_CELLS_OF_USERS,
                {"users": [u for u, _ in users], "buckets": [b for _, b in users]},
            )
        )
    fan_links_sync(pairs=dirty.follow_pairs, dirty=dirty)
    fan_cells_recount(fan_cells=dirty.fan_cells, interest_cells=dirty.interest_cells)
    if dirty.video_buckets:
        videos = sorted(dirty.video_buckets)
        params = {"videos": [v for v, _ in videos], "buckets": [b for _, b in videos]}
        _execute(sql.VIDEO_BUCKETS_RECOUNT, params)
        _execute(sql.FIRST_HOURS_RECOUNT, params)


# --- rebuild ----------------------------------------------------------------------------------
_ACTIVITY_TABLES = (sql.LIKE, sql.SHARE, sql.PLAY)


def _rebuild_targets(video_ids: list[int] | None, since: datetime | None) -> Dirty:
    """Every (video, bucket) and (user, bucket) with a row, or with a rollup row, of the
    videos (all when None) from `since` on."""
    dirty = Dirty()
    video_filter = "AND video_id = ANY(%(videos)s)" if video_ids is not None else ""
    since_filter = "AND created_at >= %(since)s" if since is not None else ""
    params = {"videos": video_ids, "since": since}
    for table in (*_ACTIVITY_TABLES, sql.COMMENT_KEY):
        for video, bucket, user in _fetch(
            f"SELECT DISTINCT video_id, {sql.bucket_of('created_at')}, user_id FROM {table} "
            f"WHERE true {video_filter} {since_filter}",
            params,
        ):
            dirty.video_buckets.add((video, bucket))
            dirty.user_buckets.add((user, bucket))
    follow_video = "AND source_video_id = ANY(%(videos)s)" if video_ids is not None else ""
    for video, bucket in _fetch(
        f"SELECT DISTINCT source_video_id, {sql.bucket_of('created_at')} FROM {sql.FOLLOW} "
        f"WHERE source_video_id IS NOT NULL {follow_video} {since_filter}",
        params,
    ):
        dirty.video_buckets.add((video, bucket))
    bucket_filter = "AND bucket >= %(since)s" if since is not None else ""
    dirty.video_buckets.update(
        _fetch(
            f"SELECT video_id, bucket FROM {sql.VIDEO_BUCKET} WHERE true {video_filter} "
            f"{bucket_filter}",
            params,
        )
    )
    return dirty


# The full rebuild's tables, truncated together: the links in SQL, the rest columnar
# (`columnar.rebuild_all`, which reads the links).
_REBUILT = (FanLink, VideoBucket, CreatorBucket, VideoTotal, CreatorFanBucket, CreatorHashtagDay)
# Room for the rebuild's SQL in memory (this transaction only): the links' aggregate, the
# comments' window (a sort of every counted comment's key).
REBUILD_WORK_MEM = "256MB"


@transaction.atomic
def analytics_rollups_rebuild(
    *, video_ids: list[int] | None = None, since: datetime | None = None
) -> int:
    """Recount the rollups of `video_ids` (all videos when None) for the buckets from `since`
    on (all time when None) from the rows. With neither, everything is rebuilt from scratch,
    set-based (`_rebuild_all`). Otherwise the keyed recounts run over the videos' buckets and
    the fan cells of their users' activity. Returns how many video buckets were (re)written
    or recounted.

    Like the old rebuild it takes no consumer lock: its TRUNCATE (ACCESS EXCLUSIVE) waits for a
    running pass, and a pass that starts meanwhile gives way after its lock_timeout."""
    # Stored creator-centre documents are outdated once the rebuilt rows commit.
    transaction.on_commit(documents_all_changed)
    if video_ids is None and since is None:
        return _rebuild_all()
    comment_keys_complete(video_ids)
    dirty = _rebuild_targets(video_ids, since)
    dirty_recount(dirty)
    _creator_buckets_resum(video_ids, since)
    _video_totals_resum(video_ids)
    return len(dirty.video_buckets)


def _rebuild_all() -> int:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    _execute(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'", [])
    _execute("SET LOCAL jit = off", [])
    _execute(f"TRUNCATE {', '.join(model._meta.db_table for model in _REBUILT)}", [])
    timings["truncate"] = time.perf_counter() - started
    mark = time.perf_counter()
    comment_keys_complete(None)
    timings["comment keys"] = time.perf_counter() - mark
    mark = time.perf_counter()
    _execute(sql.FAN_LINKS_INSERT_ALL, [])
    timings["fan links"] = time.perf_counter() - mark
    written = columnar.rebuild_all(timings)
    logger.info(
        "analytics rollups rebuilt",
        extra={"seconds": {name: round(s, 3) for name, s in timings.items()}},
    )
    last_rebuild_timings.clear()
    last_rebuild_timings.update(timings)
    return written[sql.VIDEO_BUCKET]


# Seconds per step of the last full rebuild in this process (the bench and tests read them).
last_rebuild_timings: dict[str, float] = {}


COMMENT_KEY_CHUNK = 20_000


def comment_keys_complete(video_ids: list[int] | None = None) -> None:
    """Comment keys for every comment of the videos (all when None) and every comment of their
    authors (what a repeat may refer to) that has none yet; Python computes the Unicode rules,
    in chunks. The consumer writes each comment's key as it reads the comment, so a rebuild
    finds them there; comments written around the consumer (a bulk load) get theirs here."""
    if video_ids is None:
        scope = "true"
    else:
        scope = f"c.user_id IN (SELECT user_id FROM {sql.COMMENT} WHERE video_id = ANY(%(videos)s))"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT c.id, c.user_id, c.video_id, c.created_at, c.text FROM {sql.COMMENT} c
                WHERE {scope} AND NOT EXISTS (
                    SELECT 1 FROM {sql.COMMENT_KEY} k WHERE k.comment_id = c.id)""",
            {"videos": video_ids},
        )
        while rows := cursor.fetchmany(COMMENT_KEY_CHUNK):
            comment_keys_write(rows)
    # Times copied into the keys follow the comments (a comment's time is set at insert).
    _execute(
        f"""UPDATE {sql.COMMENT_KEY} k SET created_at = c.created_at FROM {sql.COMMENT} c
            WHERE c.id = k.comment_id AND c.created_at <> k.created_at""",
        [],
    )


def _creator_buckets_resum(video_ids: list[int] | None, since: datetime | None) -> None:
    """Rewrite creator buckets as the exact sums of their video buckets (repairs a creator row
    that drifted on its own)."""
    creators = (
        f"creator_id IN (SELECT creator_id FROM {sql.VIDEO} WHERE id = ANY(%(videos)s))"
        if video_ids is not None
        else "true"
    )
    bucket_filter = "AND bucket >= %(since)s" if since is not None else ""
    counters = ", ".join(sql.COUNTERS)
    _execute(
        f"""
        WITH sums AS (
            SELECT creator_id, bucket, {", ".join(f"sum({n}) AS {n}" for n in sql.COUNTERS)}
            FROM {sql.VIDEO_BUCKET} WHERE {creators} {bucket_filter}
            GROUP BY creator_id, bucket
        ),
        gone AS (
            DELETE FROM {sql.CREATOR_BUCKET} cb
            WHERE {creators.replace("creator_id", "cb.creator_id", 1)} {bucket_filter}
              AND NOT EXISTS (SELECT 1 FROM sums s
                              WHERE s.creator_id = cb.creator_id AND s.bucket = cb.bucket)
        )
        INSERT INTO {sql.CREATOR_BUCKET} (creator_id, bucket, {counters})
        SELECT creator_id, bucket, {counters} FROM sums
        ON CONFLICT (creator_id, bucket) DO UPDATE SET
            {", ".join(f"{n} = EXCLUDED.{n}" for n in sql.COUNTERS)}
        """,
        {"videos": video_ids, "since": since},
    )


def _video_totals_resum(video_ids: list[int] | None) -> None:
    scope = "WHERE video_id = ANY(%(videos)s)" if video_ids is not None else ""
    _execute(
        f"""
        UPDATE {sql.VIDEO_TOTAL} t SET plays = s.plays, interactions = s.interactions
        FROM (SELECT video_id, sum(plays) AS plays,
                     sum(likes + comments + shares + follows_gained) AS interactions
              FROM {sql.VIDEO_BUCKET} {scope} GROUP BY video_id) s
        WHERE t.video_id = s.video_id
          AND (t.plays <> s.plays OR t.interactions <> s.interactions)
        """,
        {"videos": video_ids},
    )
