"""Like events out of the interaction tables, as the detection engine's arrays.

`like_columns_read` is the one way detection reads likes, in production and in
`integrity_evaluate` alike: one `COPY (SELECT …) TO STDOUT (FORMAT binary)` over
`engagement_like` joined to its video's creator, parsed a block at a time with numpy (every
field is a fixed-width bigint or timestamp, so a row is 74 bytes and a block of rows is one
structured array), then ordered by time (ties as the table gives them) and given dense codes:

- user, video and creator: their database ids, renumbered 0..n-1 each (creators apart from
  users: a creator's code says nothing about the same account's code as a liker);
- device and ip: a 64-bit hash of the text (`hashtextextended`), renumbered 0..n-1; a like
  without a device id (blank) or without an address (NULL) gets -1;
- ts: microseconds since the Unix epoch.

Memory: six 8-byte columns per like (48 bytes; ~0.5 GB at 10M likes) plus a block of at most
BLOCK_BYTES being parsed; the rows never exist as Python objects.

A light pass reads `since=now - a few minutes' worth`, the nightly pass `since=now - 28 days`;
both then call `integrity.detection.detect(events_build(columns))`.
"""

from __future__ import annotations

import dataclasses
import io
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import pq, sql

from engagement.models import Like, User, Video

# PostgreSQL binary COPY: an 11-byte signature, flags and header-extension length; each row a
# 16-bit field count then (32-bit length, value) per field; a 16-bit -1 at the end.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
COPY_HEADER_BYTES = 19
FIELDS = ("user", "video", "creator", "ts", "device", "ip")
ROW_DTYPE = np.dtype(
    [("count", ">i2")]
    + [item for name in FIELDS for item in ((f"{name}_length", ">i4"), (name, ">i8"))]
)
BLOCK_BYTES = 16 << 20
# timestamptz travels as microseconds since 2000-01-01 UTC
POSTGRES_EPOCH_US = 946_684_800_000_000
NO_VALUE = -1

LIKES_COPY = """
COPY (
    SELECT l.user_id, l.video_id, v.creator_id, l.created_at,
           CASE WHEN l.device_id = '' THEN {no_value} ELSE hashtextextended(l.device_id, 0) END,
           COALESCE(hashtextextended(host(l.ip), 0), {no_value})
    FROM {like} AS l JOIN {video} AS v ON v.id = l.video_id
    WHERE l.created_at >= {since} AND l.created_at < {until}
) TO STDOUT (FORMAT binary)
"""


LIKES_COUNT = """
SELECT count(*) FROM {like} AS l WHERE l.created_at >= {since} AND l.created_at < {until}
"""


class CopyFormatError(RuntimeError):
    pass


@dataclass
class LikeColumns:
    """The likes of a window in time order, coded densely (see the module docstring)."""

    user: np.ndarray
    video: np.ndarray
    creator: np.ndarray
    ts: np.ndarray
    device: np.ndarray
    ip: np.ndarray
    user_pk: np.ndarray  # user code -> the account's database id
    user_ids: np.ndarray  # user code -> the account's id as text (object array of str)

    def __len__(self) -> int:
        return len(self.ts)


def _dense(values: np.ndarray) -> np.ndarray:
    """Codes 0..n-1 in value order, written over `values`; the distinct values are returned.
    NO_VALUE stays NO_VALUE. Small non-negative ids (database ids) go through a lookup table,
    anything else (hashes) through the distinct values and a binary search: neither sorts the
    column, and neither holds more than one extra column at a time."""
    if not len(values):
        return np.empty(0, dtype=np.int64)
    unknown = values == NO_VALUE
    low = int(values[~unknown].min()) if not unknown.all() else 0
    high = int(values.max())
    if low >= 0 and high < 4 * len(values) + 1024:
        present = np.zeros(high + 1, dtype=bool)
        present[values[~unknown] if unknown.any() else values] = True
        distinct = np.flatnonzero(present)
        lookup = np.cumsum(present) - 1
        values[:] = lookup[np.maximum(values, 0)]
    else:
        distinct = np.unique(values)
        distinct = distinct[distinct != NO_VALUE] if unknown.any() else distinct
        values[:] = np.searchsorted(distinct, values)
    values[unknown] = NO_VALUE
    return distinct


def _rows_parse(block: Any, columns: dict[str, np.ndarray], at: int) -> int:
    """Parse whole rows into the columns from position `at`; how many there were."""
    rows = np.frombuffer(block, dtype=ROW_DTYPE)
    if len(rows) and not (
        (rows["count"] == len(FIELDS)).all()
        and all((rows[f"{name}_length"] == 8).all() for name in FIELDS)
    ):
        raise CopyFormatError("unexpected row layout in the binary COPY (a NULL or a wider type)")
    end = at + len(rows)
    if end > len(columns["ts"]):  # rows committed between the count and the COPY
        for name in FIELDS:
            columns[name] = np.resize(columns[name], max(end, len(columns[name]) * 5 // 4))
    for name in FIELDS:
        columns[name][at:end] = rows[name]
    return len(rows)


def _copy_out_blocks(raw: Any, query: bytes) -> Iterator[bytes]:
    """`COPY … TO STDOUT` through libpq, in blocks of about BLOCK_BYTES. PostgreSQL sends one
    message per row; psycopg's Copy object costs ~1.7 µs a message here, this loop ~0.6."""
    pgconn = raw.pgconn
    pgconn.send_query(query)
    while pgconn.flush():
        select.select([], [pgconn.socket], [])
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        message = result.error_message.decode(errors="replace") if result is not None else ""
        while pgconn.get_result() is not None:
            pass
        raise CopyFormatError(f"COPY TO STDOUT failed: {message}")
    # (copied into one buffer as they come: keeping libpq's row objects alive costs 3x the time)
    block = io.BytesIO()
    while True:
        length, data = pgconn.get_copy_data(0)
        if length < 0:
            break
        block.write(data)
        if block.tell() >= BLOCK_BYTES:
            yield block.getvalue()
            block.seek(0)
            block.truncate()
    if block.tell():
        yield block.getvalue()
    failure = None
    while (result := pgconn.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK:
            failure = result.error_message.decode(errors="replace")
    if length == -2 or failure:
        raise CopyFormatError(f"COPY TO STDOUT failed: {failure or pgconn.error_message.decode()}")


def like_columns_read(
    *,
    connection: psycopg.Connection[Any] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    user_label: Literal["pk", "username"] = "pk",
    progress: Any = None,
    timings: dict[str, float] | None = None,
) -> LikeColumns:
    """The likes made in [since, until) (all, by default), read with one binary COPY on
    `connection` (a psycopg connection; by default Django's to the default database, in its
    transaction if one is open)."""
    names = {
        "no_value": sql.Literal(NO_VALUE),
        "like": sql.Identifier(Like._meta.db_table),
        "video": sql.Identifier(Video._meta.db_table),
        "since": sql.Literal(since) if since else sql.SQL("'-infinity'::timestamptz"),
        "until": sql.Literal(until) if until else sql.SQL("'infinity'::timestamptz"),
    }
    started = time.perf_counter()
    timings = timings if timings is not None else {}
    if connection is None:
        connections[DEFAULT_DB_ALIAS].ensure_connection()
        connection = connections[DEFAULT_DB_ALIAS].connection
    raw = connection
    with raw.cursor() as cursor:
        cursor.execute(sql.SQL(LIKES_COUNT).format(**names))
        (expected,) = cursor.fetchone() or (0,)
    columns = {name: np.empty(expected, dtype=np.int64) for name in FIELDS}
    pending = b""
    header_seen = False
    rows_read = 0
    for block in _copy_out_blocks(raw, sql.SQL(LIKES_COPY).format(**names).as_bytes(raw)):
        data = memoryview(pending + block if pending else block)
        if not header_seen:
            if bytes(data[: len(COPY_SIGNATURE)]) != COPY_SIGNATURE:
                raise CopyFormatError("not a binary COPY stream")
            data = data[COPY_HEADER_BYTES:]
            header_seen = True
        whole = len(data) // ROW_DTYPE.itemsize * ROW_DTYPE.itemsize
        rows_read += _rows_parse(data[:whole], columns, rows_read)
        pending = bytes(data[whole:])
        if progress:
            progress(rows_read)
    if not header_seen or pending != b"\xff\xff":
        raise CopyFormatError("truncated binary COPY stream")
    if rows_read < len(columns["ts"]):  # rows deleted between the count and the COPY
        columns = {name: column[:rows_read].copy() for name, column in columns.items()}
    timings["copy"] = time.perf_counter() - started
    started = time.perf_counter()

    columns["ts"] += POSTGRES_EPOCH_US
    # ties in time keep the order the table gives (the order of loading, for a scratch table)
    order = np.argsort(columns["ts"], kind="stable")
    for name in FIELDS:
        columns[name][:] = columns[name][order]
    del order
    user_pk = _dense(columns["user"])
    for name in ("video", "creator", "device", "ip"):
        _dense(columns[name])
    timings["order_and_code"] = time.perf_counter() - started
    started = time.perf_counter()
    user_ids = _user_labels(raw, user_pk, user_label)
    timings["user_ids"] = time.perf_counter() - started
    return LikeColumns(**columns, user_pk=user_pk, user_ids=user_ids)


def _user_labels(raw: Any, user_pk: np.ndarray, user_label: str) -> np.ndarray:
    labels = np.empty(len(user_pk), dtype=object)
    if user_label == "pk" or not len(user_pk):
        labels[:] = [str(pk) for pk in user_pk.tolist()]
        return labels
    # the usernames of the accounts in range, in one COPY; those of accounts without likes
    # in the window are dropped here (no million-element IN list)
    statement = sql.SQL(
        "COPY (SELECT id, username FROM {} WHERE id BETWEEN {} AND {}) TO STDOUT"
    ).format(
        sql.Identifier(User._meta.db_table),
        sql.Literal(int(user_pk[0])),
        sql.Literal(int(user_pk[-1])),
    )
    pks: list[int] = []
    names: list[str] = []
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for pk, name in copy.rows():
            pks.append(int(pk))
            names.append(name)
    found = np.array(pks, dtype=np.int64)
    slot = np.minimum(np.searchsorted(user_pk, found), len(user_pk) - 1)
    wanted = user_pk[slot] == found
    labels[slot[wanted]] = np.array(names, dtype=object)[wanted]
    return labels


class EngineUnavailable(RuntimeError):
    pass


def detection_engine() -> tuple[Any, Any]:
    """(Events, detect) from integrity.detection, or EngineUnavailable when it is not there."""
    try:
        from integrity.detection import Events, detect  # type: ignore[import-not-found,unused-ignore]
    except ImportError as error:
        if error.name is not None and not error.name.startswith("integrity"):
            raise  # the engine is there but something it needs is not: say so as it is
        raise EngineUnavailable(
            f"detection engine not available (integrity.detection cannot be imported: {error})"
        ) from error
    return Events, detect


def events_build(events_class: Any, columns: LikeColumns) -> Any:
    """The engine's Events from the columns (the seam: user, video, creator, ts, device, ip as
    int64 arrays, user_ids the code -> id text table)."""
    offered = {
        "user": columns.user,
        "video": columns.video,
        "creator": columns.creator,
        "ts": columns.ts,
        "device": columns.device,
        "ip": columns.ip,
        "user_ids": columns.user_ids,
    }
    fields = {f.name: f for f in dataclasses.fields(events_class)}
    missing = [
        name
        for name, f in fields.items()
        if name not in offered
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise EngineUnavailable(
            f"integrity.detection.Events wants fields this reader does not give: {missing}"
        )
    return events_class(**{name: value for name, value in offered.items() if name in fields})
