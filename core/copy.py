"""Columns in and out of PostgreSQL by binary COPY (PostgreSQL's "COPY", binary format): no
Python object per row in either direction — numpy parses and builds the fixed-width rows.

Only fixed-width, non-NULL columns: `int8` (bigint), `int4` (integer), `bool`, and
`timestamptz` (8 bytes: microseconds since 2000-01-01 UTC, PostgreSQL's own representation, so
no conversion on either side). A SELECT must give exactly the declared columns in that order,
with no NULLs (COALESCE them)."""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # flags, no header extension
TRAILER = b"\xff\xff"
CHUNK_ROWS = 500_000

# kind -> the big-endian numpy type of its value
KINDS: dict[str, str] = {"int8": ">i8", "int4": ">i4", "bool": "?", "timestamptz": ">i8"}
# 2000-01-01 UTC in microseconds since 1970 (timestamptz values count from 2000)
EPOCH_2000_US = 946_684_800_000_000


def row_dtype(kinds: Sequence[str]) -> np.dtype[Any]:
    """One binary COPY row: a field count, then per field its length and its value."""
    fields: list[tuple[str, str]] = [("fields", ">i2")]
    for n, kind in enumerate(kinds):
        fields += [(f"len{n}", ">i4"), (f"c{n}", KINDS[kind])]
    return np.dtype(fields)


def copy_out_chunks(
    cursor: Any, select: str, params: Any, kinds: Sequence[str], chunk_rows: int = CHUNK_ROWS
) -> Iterator[np.ndarray]:
    """The rows of `COPY (select) TO STDOUT (FORMAT binary)` as structured arrays of about
    `chunk_rows` rows (fields `c0`, `c1`, … of `kinds`); `cursor` is a psycopg cursor."""
    dtype = row_dtype(kinds)
    pending = bytearray()
    header_done = False
    limit = chunk_rows * dtype.itemsize
    with cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT binary)", params) as copy:
        for block in copy:
            pending += block  # amortised: a bytearray grows in place
            if not header_done:
                if len(pending) < len(HEADER):
                    continue
                if not pending.startswith(SIGNATURE):
                    raise ValueError("not a PostgreSQL binary COPY stream")
                del pending[: len(HEADER)]
                header_done = True
            if len(pending) >= limit:
                whole = len(pending) // dtype.itemsize * dtype.itemsize
                yield np.frombuffer(bytes(pending[:whole]), dtype=dtype)
                del pending[:whole]
    # what is left: whole rows, then the trailer
    whole = (len(pending) - len(TRAILER)) // dtype.itemsize
    if whole > 0:
        yield np.frombuffer(bytes(pending[: whole * dtype.itemsize]), dtype=dtype)


def copy_out(
    cursor: Any, select: str, params: Any, columns: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """The SELECT's rows as one native-order array per column (`columns`: name -> kind, in
    the SELECT's order). Each chunk is converted as it arrives (memory: the columns, twice at
    the final concatenation, plus one chunk)."""
    kinds = list(columns.values())
    natives = [np.dtype(KINDS[kind]).newbyteorder("=") for kind in kinds]
    parts: list[list[np.ndarray]] = [[] for _ in kinds]
    for chunk in copy_out_chunks(cursor, select, params, kinds):
        for n, native in enumerate(natives):
            parts[n].append(chunk[f"c{n}"].astype(native))
    return {
        name: np.concatenate(parts[n]) if parts[n] else np.zeros(0, dtype=natives[n])
        for n, name in enumerate(columns)
    }


def copy_in(
    cursor: Any,
    table: str,
    columns: Mapping[str, tuple[str, np.ndarray]],
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """`COPY table (columns) FROM STDIN (FORMAT binary)` of equal-length arrays (`columns`:
    name -> (kind, values)); returns the rows written."""
    names = list(columns)
    kinds = [columns[name][0] for name in names]
    values = [columns[name][1] for name in names]
    rows = len(values[0]) if values else 0
    if any(len(v) != rows for v in values):
        raise ValueError("copy_in: the columns differ in length")
    dtype = row_dtype(kinds)
    quoted = ", ".join(f'"{name}"' for name in names)
    with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN (FORMAT binary)") as copy:
        copy.write(HEADER)
        for start in range(0, rows, chunk_rows):
            stop = min(rows, start + chunk_rows)
            block = np.empty(stop - start, dtype=dtype)
            block["fields"] = len(names)
            for n, kind in enumerate(kinds):
                block[f"len{n}"] = np.dtype(KINDS[kind]).itemsize
                block[f"c{n}"] = values[n][start:stop]
            copy.write(block.tobytes())
        copy.write(TRAILER)
    return rows
