"""Exact, sharded video counters (see VideoCounter).

Locking protocol, so a recount never races a write: every write that changes a counter first
takes FOR KEY SHARE on the video row (writers do not block each other), and a recount takes
FOR UPDATE on it (waits for writers in flight, holds new ones until it has rewritten the shards).
"""

import random
from typing import Literal

from django.db import connection, transaction

from engagement.models import Comment, Like, Play, Share, Video, VideoCounter

COUNTER_SHARDS = 8
CounterName = Literal["likes", "comments", "shares", "plays"]
COUNTER_NAMES: tuple[CounterName, ...] = ("likes", "comments", "shares", "plays")


def video_lock_shared(*, video_id: int) -> bool:
    """FOR KEY SHARE on the video; False when it does not exist."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {Video._meta.db_table} WHERE id = %s FOR KEY SHARE", [video_id]
        )
        return cursor.fetchone() is not None


def video_counter_add(*, video_id: int, counter: CounterName, delta: int) -> None:
    """Add delta to one random shard. Call inside the transaction that wrote the row."""
    if counter not in COUNTER_NAMES:
        raise ValueError(f"unknown counter {counter!r}")
    table = VideoCounter._meta.db_table
    initial = [delta if name == counter else 0 for name in COUNTER_NAMES]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (video_id, shard, likes, comments, shares, plays) "
            f"VALUES (%s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (video_id, shard) DO UPDATE SET {counter} = {table}.{counter} + %s",
            [video_id, random.randrange(COUNTER_SHARDS), *initial, delta],
        )


def video_counts(video_ids: list[int]) -> dict[int, dict[str, int]]:
    """{video_id: {likes, comments, shares, plays}} summed over shards, zeros for none."""
    counts: dict[int, dict[str, int]] = {
        video_id: dict.fromkeys(COUNTER_NAMES, 0) for video_id in video_ids
    }
    if not video_ids:
        return counts
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT video_id, SUM(likes), SUM(comments), SUM(shares), SUM(plays) "
            f"FROM {VideoCounter._meta.db_table} WHERE video_id = ANY(%s) GROUP BY video_id",
            [list(video_ids)],
        )
        for video_id, likes, comments, shares, plays in cursor.fetchall():
            counts[video_id] = {
                "likes": int(likes),
                "comments": int(comments),
                "shares": int(shares),
                "plays": int(plays),
            }
    return counts


@transaction.atomic
def video_counters_recount(*, video_id: int) -> dict[str, int] | None:
    """Rebuild a video's counters from its counted interaction rows. None if it is gone."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {Video._meta.db_table} WHERE id = %s FOR UPDATE", [video_id])
        if cursor.fetchone() is None:
            return None
    exact: dict[str, int] = {
        "likes": Like.objects.filter(video_id=video_id, counted=True).count(),
        "comments": Comment.objects.filter(video_id=video_id, counted=True).count(),
        "shares": Share.objects.filter(video_id=video_id, counted=True).count(),
        "plays": Play.objects.filter(video_id=video_id, counted=True).count(),
    }
    VideoCounter.objects.filter(video_id=video_id).delete()
    VideoCounter.objects.create(video_id=video_id, shard=0, **exact)
    return exact
