"""The full rollup rebuild, columnar: the counted rows read once by binary COPY into numpy
columns, every rollup table computed from them in memory, and written back by binary COPY
(docs/analytics.md, "Rebuild and reconciliation").

Why not SQL: the fan side is a fan-out — every counted row times its user's follow links (and
times its video's hashtags for the interests) — which PostgreSQL executes as hash joins and
hash aggregates over tens of millions of joined rows; here it is a gather and a `bincount`
over arrays. And one read of each table serves every rollup, where the SQL steps read the
interaction tables once each.

The definitions are those of the SQL (`statements.COUNTS`, the raw oracle): the same counted
rows, a replay is a counted play that is not its (video, user)'s first (a bucket's replays are
its plays less the pairs whose first play falls in it), a quick like's pair has counted plays
summing to < 3 s, an effective comment is not hollow and the first counted one of its (user,
repeat key) (the window function runs in the COPY's SELECT), follower events are the rows of
users who follow the video's creator now (`FanLink`), follows gained are counted follows whose
source video is the creator's own. Times stay PostgreSQL's microseconds since 2000-01-01 UTC
(the origin of the quarter-hour and day grids), so a bucket is an integer division.

Memory: the columns of the counted rows (~25 bytes per row) plus one chunk of the fan-out at a
time (FANOUT_CHUNK rows). Grids are counted densely (`bincount`) when their key space is at
most DENSE_CELLS cells, else over their sorted distinct keys (`np.unique`) — the same counts."""

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection

from analytics.models import COUNTERS
from analytics.raw.statements import QUICK_LIKE_WATCHED_MS
from analytics.services import statements as sql
from analytics.tables import COMMENT, FOLLOW, LIKE, PLAY, SHARE, VIDEO, VIDEO_HASHTAG
from core.copy import copy_in, copy_out
from core.db import indexes_deferred

QUARTER_US = 15 * 60 * 1_000_000
DAY_US = 24 * 60 * 60 * 1_000_000
HOUR_US = 60 * 60 * 1_000_000
DENSE_CELLS = 1 << 26  # 64 M cells: a dense count array of 512 MB at most, freed at once
FANOUT_CHUNK = 1_000_000  # rows fanned out to their user's links at a time

_TS = "timestamptz"


def _select(columns: str, table: str) -> str:
    return f"SELECT {columns} FROM {table} WHERE counted"


_VIDEOS = f"SELECT id, creator_id, created_at FROM {VIDEO} ORDER BY id"
_LINKS = f"SELECT user_id, creator_id FROM {sql.FAN_LINK} ORDER BY user_id, creator_id"
_TAGS = f"SELECT video_id, hashtag_id FROM {VIDEO_HASHTAG}"
_PLAYS = _select("video_id, user_id, created_at, watched_ms::int8, completed", PLAY)
_LIKES = _select("video_id, user_id, created_at", LIKE)
_SHARES = _select("video_id, user_id, created_at", SHARE)
_COMMENTS = f"""
    SELECT k.video_id, k.user_id, k.created_at,
           NOT k.hollow AND row_number() OVER (PARTITION BY k.user_id, k.key_hash
                                               ORDER BY k.created_at, k.comment_id) = 1
    FROM {sql.COMMENT_KEY} k JOIN {COMMENT} c ON c.id = k.comment_id
    WHERE c.counted
"""
_FOLLOWS = f"""
    SELECT f.source_video_id, f.created_at FROM {FOLLOW} f
    JOIN {VIDEO} v ON v.id = f.source_video_id AND v.creator_id = f.creator_id
    WHERE f.counted
"""
_ROW = {"video": "int8", "user": "int8", "ts": _TS}


class _Grid:
    """Counts over integer keys in [0, space): the occupied keys (sorted) of the rows given
    at construction, and per occupied key the count (or weighted sum) of any rows."""

    def __init__(self, space: int, keys: list[np.ndarray]) -> None:
        self.space = space
        self.dense = space <= DENSE_CELLS
        if self.dense:
            seen = np.zeros(space, dtype=bool)
            for part in keys:
                seen[part] = True
            self.keys = np.flatnonzero(seen)
        else:
            self.keys = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)

    def count(self, keys: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        if self.dense:
            full = np.bincount(keys, weights=weights, minlength=self.space)
            return np.rint(full[self.keys]).astype(np.int64)
        at = np.searchsorted(self.keys, keys)
        return np.rint(np.bincount(at, weights=weights, minlength=len(self.keys))).astype(np.int64)


class _Sum:
    """A running count over keys in [0, space), fed a chunk at a time (the fan side)."""

    def __init__(self, space: int) -> None:
        self.space = space
        self.dense = space <= DENSE_CELLS
        self.total = np.zeros(space if self.dense else 0, dtype=np.int64)
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: np.ndarray) -> None:
        if self.dense:
            self.total += np.bincount(keys, minlength=self.space)
        else:
            distinct, counts = np.unique(keys, return_counts=True)
            self.parts.append((distinct, counts))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, counts) of the keys counted at least once, keys ascending."""
        if self.dense:
            keys = np.flatnonzero(self.total)
            return keys, self.total[keys]
        if not self.parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys = np.concatenate([k for k, _ in self.parts])
        counts = np.concatenate([c for _, c in self.parts])
        distinct, at = np.unique(keys, return_inverse=True)
        return distinct, np.bincount(at, weights=counts, minlength=len(distinct)).astype(np.int64)


def _find(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per key its index in `sorted_keys` (ascending, distinct), -1 where it is absent."""
    if len(sorted_keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == keys, at, -1)


def _expand(start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR slices `[start[i], start[i] + count[i])`: per element, the slice it belongs to
    and its position in the flat array."""
    which = np.repeat(np.arange(len(count)), count)
    within = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count)
    return which, np.repeat(start, count) + within


@dataclass
class _Links:
    """FanLink as CSR by user: `users` ascending, each user's creators (codes) in
    `creators[start[i]:start[i] + count[i]]`."""

    users: np.ndarray
    start: np.ndarray
    count: np.ndarray
    creators: np.ndarray
    keys: np.ndarray  # user index * ncreators + creator code, ascending

    @classmethod
    def of(cls, user: np.ndarray, creator_code: np.ndarray, ncreators: int) -> "_Links":
        order = np.lexsort((creator_code, user))
        user, creator_code = user[order], creator_code[order]
        users, start, count = np.unique(user, return_index=True, return_counts=True)
        index = np.repeat(np.arange(len(users), dtype=np.int64), count)
        return cls(users, start, count, creator_code, index * ncreators + creator_code)

    def index(self, user: np.ndarray) -> np.ndarray:
        """Per row its user's index in `users`, -1 for a user with no links."""
        return _find(self.users, user)

    def fan_out(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For rows whose user index is `at` (>= 0): (row, creator code) per link."""
        rows = np.flatnonzero(at >= 0)
        which, position = _expand(self.start[at[rows]], self.count[at[rows]])
        return rows[which], self.creators[position]


def _read(cursor: Any, statement: str, columns: dict[str, str]) -> dict[str, np.ndarray]:
    return copy_out(cursor, statement, None, columns)


def rebuild_all(timings: dict[str, float]) -> dict[str, int]:
    """Recompute VideoBucket, CreatorBucket, VideoTotal (with first hours), CreatorFanBucket
    and CreatorHashtagDay from the counted rows and `FanLink` (which must be rebuilt, and
    the tables empty, before: `rollups._rebuild_all`). Returns the rows written per table;
    adds the seconds of its read, compute and write to `timings`."""
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor (COPY)
        mark = time.perf_counter()
        videos = _read(cursor, _VIDEOS, {"id": "int8", "creator": "int8", "published": _TS})
        links = _read(cursor, _LINKS, {"user": "int8", "creator": "int8"})
        tags = _read(cursor, _TAGS, {"video": "int8", "tag": "int8"})
        plays = _read(cursor, _PLAYS, {**_ROW, "watched": "int8", "completed": "bool"})
        likes = _read(cursor, _LIKES, _ROW)
        comments = _read(cursor, _COMMENTS, {**_ROW, "effective": "bool"})
        shares = _read(cursor, _SHARES, _ROW)
        follows = _read(cursor, _FOLLOWS, {"video": "int8", "ts": _TS})
        timings["columns read"] = time.perf_counter() - mark
        mark = time.perf_counter()
        tables = _compute(videos, links, tags, plays, likes, comments, shares, follows)
        del videos, links, tags, plays, likes, comments, shares, follows
        timings["columns computed"] = time.perf_counter() - mark
        mark = time.perf_counter()
        with indexes_deferred(list(tables)):
            written = {table: copy_in(cursor, table, columns) for table, columns in tables.items()}
        timings["columns written"] = time.perf_counter() - mark
        return written


def _code(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_ids, ids)


def _compute(
    videos: dict[str, np.ndarray],
    links_read: dict[str, np.ndarray],
    tags: dict[str, np.ndarray],
    plays: dict[str, np.ndarray],
    likes: dict[str, np.ndarray],
    comments: dict[str, np.ndarray],
    shares: dict[str, np.ndarray],
    follows: dict[str, np.ndarray],
) -> dict[str, dict[str, tuple[str, np.ndarray]]]:
    video_ids = videos["id"]  # ascending
    creator_ids, video_creator = np.unique(videos["creator"], return_inverse=True)
    ncreators = len(creator_ids)
    kinds = (plays, likes, comments, shares, follows)
    for rows in kinds:
        rows["v"] = _code(video_ids, rows["video"])
        rows["b"] = rows["ts"] // QUARTER_US
    stamps = [rows["b"] for rows in kinds if len(rows["b"])]
    b_min = int(min(s.min() for s in stamps)) if stamps else 0
    b_max = int(max(s.max() for s in stamps)) if stamps else 0
    nb = b_max - b_min + 1
    for rows in kinds:
        rows["cell"] = rows["v"] * nb + (rows["b"] - b_min)  # (video, quarter hour)

    # (video, user) pairs of the plays: first play and watch time
    span = int(max([int(r["user"].max()) for r in (plays, likes) if len(r["user"])] or [0])) + 1
    if len(video_ids) * span >= 2**62:
        raise ValueError("user ids too large for the pair keys")
    pair_of_play = plays["v"] * span + plays["user"]
    order = np.argsort(pair_of_play, kind="stable")
    sorted_pairs = pair_of_play[order]
    starts = np.flatnonzero(np.r_[True, sorted_pairs[1:] != sorted_pairs[:-1]])[: len(order)]
    pair_keys = sorted_pairs[starts]
    first_ts = np.minimum.reduceat(plays["ts"][order], starts) if len(starts) else starts
    watched = np.add.reduceat(plays["watched"][order], starts) if len(starts) else starts
    del order, sorted_pairs
    first_cell = (pair_keys // span) * nb + (first_ts // QUARTER_US - b_min)
    pair = _find(pair_keys, likes["v"] * span + likes["user"])
    like_watched = np.where(pair >= 0, watched[pair] if len(pair_keys) else 0, 0)
    quick = like_watched < QUICK_LIKE_WATCHED_MS

    # follower events: the row's user follows the video's creator now
    links = _Links.of(links_read["user"], _code(creator_ids, links_read["creator"]), ncreators)
    for rows in (plays, likes, comments, shares):
        rows["link"] = links.index(rows["user"])
        key = rows["link"] * ncreators + video_creator[rows["v"]]
        rows["follower"] = (rows["link"] >= 0) & (_find(links.keys, key) >= 0)

    # the pairs' first cells are play cells
    grid = _Grid(len(video_ids) * nb, [rows["cell"] for rows in kinds])
    counts = {
        "plays": grid.count(plays["cell"]),
        "completed_plays": grid.count(plays["cell"][plays["completed"]]),
        "likes": grid.count(likes["cell"]),
        "quick_likes": grid.count(likes["cell"][quick]),
        "comments": grid.count(comments["cell"]),
        "effective_comments": grid.count(comments["cell"][comments["effective"]]),
        "shares": grid.count(shares["cell"]),
        "follows_gained": grid.count(follows["cell"]),
        "follower_events": grid.count(
            np.concatenate([r["cell"][r["follower"]] for r in (plays, likes, comments, shares)])
        ),
    }
    counts["replays"] = counts["plays"] - grid.count(first_cell)
    cell_video = grid.keys // nb
    cell_bucket = grid.keys % nb + b_min
    cell_creator = video_creator[cell_video]
    out: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    out[sql.VIDEO_BUCKET] = {
        "video_id": ("int8", video_ids[cell_video]),
        "creator_id": ("int8", creator_ids[cell_creator]),
        "bucket": (_TS, cell_bucket * QUARTER_US),
        **{name: ("int8", counts[name]) for name in sql.FIELDS},
    }

    # the creators' buckets: the sums of their videos' cells
    creator_grid_keys = cell_creator * nb + (cell_bucket - b_min)
    creator_grid = _Grid(ncreators * nb, [creator_grid_keys])
    out[sql.CREATOR_BUCKET] = {
        "creator_id": ("int8", creator_ids[creator_grid.keys // nb]),
        "bucket": (_TS, (creator_grid.keys % nb + b_min) * QUARTER_US),
        **{
            name: ("int8", creator_grid.count(creator_grid_keys, counts[name].astype(np.float64)))
            for name in COUNTERS
        },
    }

    # lifetime totals and first hours, for every video
    nvideos = len(video_ids)
    interactions = (
        counts["likes"] + counts["comments"] + counts["shares"] + counts["follows_gained"]
    )
    published = videos["published"]

    def first_hour(rows: dict[str, np.ndarray]) -> np.ndarray:
        since = rows["ts"] - published[rows["v"]]
        inside = (since >= 0) & (since < HOUR_US)
        return np.bincount(rows["v"][inside], minlength=nvideos)

    out[sql.VIDEO_TOTAL] = {
        "video_id": ("int8", video_ids),
        "creator_id": ("int8", videos["creator"]),
        "published_at": (_TS, published),
        "plays": ("int8", _by_video(cell_video, counts["plays"], nvideos)),
        "interactions": ("int8", _by_video(cell_video, interactions, nvideos)),
        "first_hour_plays": ("int8", first_hour(plays)),
        "first_hour_interactions": (
            "int8",
            first_hour(likes) + first_hour(comments) + first_hour(shares) + first_hour(follows),
        ),
    }

    # the fan side: each row of a user, once per creator the user follows
    fan = _Sum(ncreators * nb)
    tag_ids, tag_code = np.unique(tags["tag"], return_inverse=True)
    ntags = len(tag_ids)
    tag_order = np.argsort(_code(video_ids, tags["video"]), kind="stable")
    tag_video = _code(video_ids, tags["video"])[tag_order]
    tag_of = tag_code[tag_order]
    tag_start = np.searchsorted(tag_video, np.arange(nvideos))
    tag_count = np.bincount(tag_video, minlength=nvideos)
    days = [rows["ts"] // DAY_US for rows in (plays, likes) if len(rows["ts"])]
    d_min = int(min(d.min() for d in days)) if days else 0
    nd = (int(max(d.max() for d in days)) - d_min + 1) if days else 1
    interest_space = ncreators * nd * max(ntags, 1)
    interest = {"plays": _Sum(interest_space), "likes": _Sum(interest_space)}
    activity = (("plays", plays), ("likes", likes), ("comments", comments), ("shares", shares))
    for name, rows in activity:
        for lo in range(0, len(rows["link"]), FANOUT_CHUNK):
            hi = lo + FANOUT_CHUNK
            row, creator = links.fan_out(rows["link"][lo:hi])
            fan.add(creator * nb + (rows["b"][lo:hi][row] - b_min))
            if name in interest:
                video = rows["v"][lo:hi][row]
                which, position = _expand(tag_start[video], tag_count[video])
                day = rows["ts"][lo:hi][row][which] // DAY_US - d_min
                interest[name].add((creator[which] * nd + day) * ntags + tag_of[position])
    fan_keys, fan_counts = fan.result()
    out[sql.CREATOR_FAN_BUCKET] = {
        "creator_id": ("int8", creator_ids[fan_keys // nb]),
        "bucket": (_TS, (fan_keys % nb + b_min) * QUARTER_US),
        "events": ("int8", fan_counts),
    }
    play_keys, play_counts = interest["plays"].result()
    like_keys, like_counts = interest["likes"].result()
    keys = np.union1d(play_keys, like_keys)
    plays_of = np.zeros(len(keys), np.int64)
    likes_of = np.zeros(len(keys), np.int64)
    plays_of[np.searchsorted(keys, play_keys)] = play_counts
    likes_of[np.searchsorted(keys, like_keys)] = like_counts
    creator_day, tag = np.divmod(keys, max(ntags, 1))
    creator, day = np.divmod(creator_day, nd)
    out[sql.CREATOR_HASHTAG_DAY] = {
        "creator_id": ("int8", creator_ids[creator]),
        "day": (_TS, (day + d_min) * DAY_US),
        "hashtag_id": ("int8", tag_ids[tag] if ntags else tag),
        "plays": ("int8", plays_of),
        "likes": ("int8", likes_of),
    }
    return out


def _by_video(video: np.ndarray, values: np.ndarray, nvideos: int) -> np.ndarray:
    return np.rint(np.bincount(video, weights=values.astype(np.float64), minlength=nvideos)).astype(
        np.int64
    )
