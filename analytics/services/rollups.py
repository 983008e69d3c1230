"""Writing the rollups: recounting dirty buckets, keeping FanLink in step with the follows,
computing comment keys, and the rebuild path. Every function here is set-based and idempotent:
it recounts from the rows and passes on only the difference, so running it twice, or on an
event already applied, changes nothing.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from analytics.comments import comment_is_hollow, comment_repeat_key
from analytics.models import (
    CommentKey,
    CreatorBucket,
    CreatorFanBucket,
    CreatorHashtagBucket,
    FanLink,
    UserBucket,
    UserHashtagBucket,
    VideoBucket,
    VideoTotal,
)
from analytics.services import statements as sql

VideoBucketKey = tuple[int, datetime]
UserBucketKey = tuple[int, datetime]
FollowPair = tuple[int, int]


@dataclass
class Dirty:
    """What a pass must recount: (video, bucket), (user, bucket) and (follower, creator)."""

    video_buckets: set[VideoBucketKey] = field(default_factory=set)
    user_buckets: set[UserBucketKey] = field(default_factory=set)
    follow_pairs: set[FollowPair] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.video_buckets or self.user_buckets or self.follow_pairs)


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
    """Compute the Unicode rules once per comment (id, user, video, created_at, text)."""
    keys = [
        CommentKey(
            comment_id=comment_id,
            user_id=user_id,
            video_id=video_id,
            created_at=created_at,
            key_hash=repeat_key_hash(text),
            hollow=comment_is_hollow(text),
        )
        for comment_id, user_id, video_id, created_at, text in rows
    ]
    CommentKey.objects.bulk_create(keys, batch_size=2000, ignore_conflicts=True)
    return [key.comment_id for key in keys]


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
    """Make FanLink match the counted follows of `pairs`; move the follower's activity into
    (out of) the creator's fan grid and interests; mark the video buckets that change."""
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
    _execute(sql.FAN_GRID_APPLY_LINKS, params)
    _execute(sql.INTERESTS_APPLY_LINKS, params)
    dirty.video_buckets.update(
        (video, bucket) for video, bucket in _fetch(sql.LINK_VIDEO_BUCKETS, params)
    )
    return len(changes)


def dirty_recount(dirty: Dirty) -> None:
    """Recount what `dirty` names, in the order the deltas need: links first (so the video
    buckets' follower counts and the users' fan-out see the new links), then users, then videos
    and their first hours."""
    fan_links_sync(pairs=dirty.follow_pairs, dirty=dirty)
    if dirty.user_buckets:
        users = sorted(dirty.user_buckets)
        params = {"users": [u for u, _ in users], "buckets": [b for _, b in users]}
        _execute(sql.USER_BUCKETS_RECOUNT, params)
        _execute(sql.USER_HASHTAG_BUCKETS_RECOUNT, params)
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


@transaction.atomic
def analytics_rollups_rebuild(
    *, video_ids: list[int] | None = None, since: datetime | None = None
) -> int:
    """Recount the rollups of `video_ids` (all videos when None) for the buckets from `since`
    on (all time when None) from the rows. With neither, everything is rebuilt from scratch:
    the fan links from the follows, the users' activity, the creators' grids and interests.
    Returns how many video buckets were recounted."""
    if video_ids is None and since is None:
        for model in (
            VideoBucket,
            CreatorBucket,
            VideoTotal,
            UserBucket,
            UserHashtagBucket,
            FanLink,
            CreatorFanBucket,
            CreatorHashtagBucket,
        ):
            _execute(f"TRUNCATE {model._meta.db_table}", [])
    _comment_keys_complete(video_ids)
    dirty = _rebuild_targets(video_ids, since)
    if video_ids is None and since is None:
        dirty.follow_pairs.update(_fetch(f"SELECT user_id, creator_id FROM {sql.FOLLOW}", []))
        # Users first (their buckets are what a new link brings to a creator), then links.
        user_only = Dirty(user_buckets=dirty.user_buckets)
        dirty_recount(user_only)
        dirty.user_buckets = set()
    else:
        # A partial rebuild keeps the fan side as it is; its buckets' users are rechecked.
        pass
    dirty_recount(dirty)
    _creator_buckets_resum(video_ids, since)
    _video_totals_resum(video_ids)
    return len(dirty.video_buckets)


def _comment_keys_complete(video_ids: list[int] | None) -> None:
    """Comment keys for every comment of the videos and every comment of their authors (what
    a repeat may refer to); Python computes the Unicode rules, in chunks."""
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
        while rows := cursor.fetchmany(5000):
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
