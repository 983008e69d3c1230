"""Exact, sharded video counters (see VideoCounter).

Locking protocol, so a recount never races a write: every write that changes a counter first
takes FOR KEY SHARE on the video row (writers do not block each other), and a recount takes
FOR UPDATE on it (waits for writers in flight, holds new ones until it has rewritten the shards).
The locks are engagement.locks's.
"""

import random
from collections.abc import Sequence
from typing import Literal

from django.db import connection, transaction

from engagement.locks import videos_for_update
from engagement.models import Comment, Like, Play, Share, Video, VideoCounter

COUNTER_SHARDS = 8
CounterName = Literal["likes", "comments", "shares", "plays"]
COUNTER_NAMES: tuple[CounterName, ...] = ("likes", "comments", "shares", "plays")


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


# The exact count of one counter for the video `v.id`, from the counted rows.
_COUNTED_MODELS: dict[CounterName, type[Like | Comment | Share | Play]] = {
    "likes": Like,
    "comments": Comment,
    "shares": Share,
    "plays": Play,
}
_EXACT: dict[CounterName, str] = {
    name: f"SELECT count(*) FROM {model._meta.db_table} x WHERE x.video_id = v.id AND x.counted"
    for name, model in _COUNTED_MODELS.items()
}


def video_counters_rewrite(
    *, video_ids: Sequence[int], counters: Sequence[CounterName] = COUNTER_NAMES
) -> dict[int, dict[str, int]]:
    """Rewrite these counters of these videos from the counted rows: two statements for any
    number of videos. The caller holds `videos_for_update` on them (so no writer is between
    its row and its counter). Returns {video_id: {counter: exact}} for the recounted counters.

    The exact count goes to shard 0 and the other shards' share of it becomes 0; recounting
    every counter also drops the other shards (nothing is left in them).
    """
    unknown = set(counters) - set(COUNTER_NAMES)
    if unknown:
        raise ValueError(f"unknown counter {sorted(unknown)[0]!r}")
    if not video_ids or not counters:
        return {}
    table = VideoCounter._meta.db_table
    ids = sorted(set(video_ids))
    with connection.cursor() as cursor:
        if set(counters) == set(COUNTER_NAMES):
            cursor.execute(
                f"DELETE FROM {table} WHERE video_id = ANY(%s::bigint[]) AND shard <> 0", [ids]
            )
        else:
            cursor.execute(
                f"UPDATE {table} SET {', '.join(f'{name} = 0' for name in counters)} "
                f"WHERE video_id = ANY(%s::bigint[]) AND shard <> 0",
                [ids],
            )
        values = ", ".join(
            f"({_EXACT[name]})" if name in counters else "0" for name in COUNTER_NAMES
        )
        cursor.execute(
            f"INSERT INTO {table} (video_id, shard, likes, comments, shares, plays) "
            f"SELECT v.id, 0, {values} "
            f"FROM {Video._meta.db_table} v WHERE v.id = ANY(%s::bigint[]) "
            f"ON CONFLICT (video_id, shard) DO UPDATE SET "
            f"{', '.join(f'{name} = EXCLUDED.{name}' for name in counters)} "
            f"RETURNING video_id, {', '.join(counters)}",
            [ids],
        )
        return {
            row[0]: {name: int(value) for name, value in zip(counters, row[1:], strict=True)}
            for row in cursor.fetchall()
        }


@transaction.atomic
def video_counters_recount_many(
    *, video_ids: Sequence[int], counters: Sequence[CounterName] = COUNTER_NAMES
) -> dict[int, dict[str, int]]:
    """Lock the videos (id order) and rebuild their counters: three statements for any number
    of videos. Videos that do not exist are left out of the answer."""
    locked = videos_for_update(video_ids=video_ids)
    return video_counters_rewrite(video_ids=locked, counters=counters)


def video_counters_recount(*, video_id: int) -> dict[str, int] | None:
    """Rebuild a video's counters from its counted interaction rows. None if it is gone."""
    return video_counters_recount_many(video_ids=[video_id]).get(video_id)
