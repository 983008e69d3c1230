"""Reading like events from PostgreSQL into `Events` columns: one `COPY … TO STDOUT (FORMAT
binary)` of fixed-width integers, parsed by numpy a chunk at a time into arrays allocated once
(no Python object per row; memory: the arrays plus one chunk).

Devices and networks are hashed in SQL (`hashtextextended`) and coded densely in numpy; accounts
are coded densely too, and `Events.user_ids` holds each code's user id (as text)."""

import contextlib
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from django.db import connection

from core.copy import CHUNK_ROWS, copy_out_chunks
from integrity.detection.arrays import Int
from integrity.detection.events import Events

_COLUMNS = ("user", "video", "creator", "ts", "device", "ip", "subnet")
_KINDS = ["int8"] * len(_COLUMNS)


def _hash(column: str) -> str:
    """A 64-bit hash of a text value, -1 for an empty one (unknown)."""
    return f"COALESCE(hashtextextended(NULLIF({column}, ''), 0), -1)"


def _likes_select(table: str, video_table: str) -> str:
    ip = "host(l.ip)"
    subnet = "host(network(set_masklen(l.ip, CASE WHEN family(l.ip) = 4 THEN 24 ELSE 48 END)))"
    return f"""
        SELECT l.user_id::int8, l.video_id::int8, v.creator_id::int8,
               (extract(epoch FROM l.created_at) * 1000000)::int8,
               {_hash("l.device_id")}, {_hash(ip)}, {_hash(subnet)}
        FROM {table} l JOIN {video_table} v ON v.id = l.video_id
        WHERE l.created_at >= %(since)s AND l.created_at < %(until)s
        ORDER BY l.created_at, l.id
    """


def _dense(values: Int) -> tuple[Int, Int]:
    """Dense codes (0..k-1) of the values, -1 kept for unknown; and the distinct values."""
    known = values != -1
    distinct, inverse = np.unique(values[known], return_inverse=True)
    codes = np.full(len(values), -1, dtype=np.int32)
    codes[known] = inverse.astype(np.int32)
    return codes, distinct


def events_from_likes(
    *, since: datetime, until: datetime, database: psycopg.Connection[Any] | None = None
) -> Events:
    """The likes made in [since, until), counted or not (a decision must see the likes it
    already discounted), as `Events`: from Django's database, or from `database` (a psycopg
    connection to a database of the same schema: `integrity_evaluate`'s scratch database)."""
    with contextlib.ExitStack() as stack:
        if database is None:
            cursor = stack.enter_context(connection.cursor()).cursor
        else:
            cursor = stack.enter_context(database.cursor())
        return _read(cursor, since=since, until=until)


def _read(cursor: Any, *, since: datetime, until: datetime) -> Events:
    from engagement.models import Like, Video

    statement = _likes_select(Like._meta.db_table, Video._meta.db_table)
    params = {"since": since, "until": until}
    cursor.execute(
        f"SELECT count(*) FROM {Like._meta.db_table} "
        "WHERE created_at >= %(since)s AND created_at < %(until)s",
        params,
    )
    expected = int(cursor.fetchone()[0])
    columns = {name: np.empty(expected + CHUNK_ROWS, dtype=np.int64) for name in _COLUMNS}
    filled = 0
    for chunk in copy_out_chunks(cursor, statement, params, _KINDS, CHUNK_ROWS):
        if filled + len(chunk) > len(columns["user"]):  # rows committed since the count
            for name in _COLUMNS:
                columns[name] = np.resize(columns[name], filled + len(chunk) + CHUNK_ROWS)
        for n, name in enumerate(_COLUMNS):
            columns[name][filled : filled + len(chunk)] = chunk[f"c{n}"]
        filled += len(chunk)
    # each column to its final form, freeing the read one as it goes (memory: the columns and
    # one coding at a time): dense int32 codes for accounts, devices and networks; int32 ids
    # for videos and creators when they fit; times as read
    cut = {name: columns.pop(name)[:filled] for name in _COLUMNS}
    users, user_ids = _dense(cut.pop("user"))
    device = _dense(cut.pop("device"))[0]
    ip = _dense(cut.pop("ip"))[0]
    subnet = _dense(cut.pop("subnet"))[0]
    return Events(
        user=users,
        video=_narrow(cut.pop("video")),
        creator=_narrow(cut.pop("creator")),
        ts=cut.pop("ts"),
        device=device,
        ip=ip,
        user_ids=[str(user_id) for user_id in user_ids.tolist()],
        subnet=subnet,
    )


def _narrow(ids: Int) -> Int:
    """Database ids as int32 when they all fit (half the memory), else as they are."""
    if len(ids) and int(ids.min()) >= 0 and int(ids.max()) < 2**31:
        return ids.astype(np.int32)
    return ids
