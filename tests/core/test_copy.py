"""core.copy: numpy columns into PostgreSQL and back by binary COPY, exactly."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from core.copy import EPOCH_2000_US, copy_in, copy_out, copy_out_chunks

pytestmark = pytest.mark.django_db

COLUMNS = {"n": "int8", "small": "int4", "flag": "bool", "at": "timestamptz"}


def _table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE copy_probe "
            "(id serial, n bigint, small integer, flag boolean, at timestamptz)"
        )


def _values(rows: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "n": rng.integers(-(2**62), 2**62, rows),
        "small": rng.integers(-(2**31), 2**31 - 1, rows).astype(np.int32),
        "flag": rng.random(rows) < 0.5,
        # before and after 2000-01-01 (negative and positive on PostgreSQL's own scale)
        "at": rng.integers(-(10**15), 10**15, rows),
    }


def test_columns_go_in_and_come_back_the_same_across_chunks() -> None:
    _table()
    values = _values(1_234)
    with connection.cursor() as wrapper:
        written = copy_in(
            wrapper.cursor,
            "copy_probe",
            {name: (kind, values[name]) for name, kind in COLUMNS.items()},
            chunk_rows=100,
        )
        back = copy_out(
            wrapper.cursor, "SELECT n, small, flag, at FROM copy_probe ORDER BY id", None, COLUMNS
        )
        chunks = list(
            copy_out_chunks(
                wrapper.cursor, "SELECT n FROM copy_probe ORDER BY id", None, ["int8"], 500
            )
        )
    assert written == 1_234
    for name in COLUMNS:
        assert back[name].tolist() == values[name].tolist(), name
    assert [len(chunk) for chunk in chunks] == [500, 500, 234]


def test_timestamps_are_microseconds_since_2000_and_sql_reads_them_so() -> None:
    _table()
    moment = datetime(2026, 3, 29, 1, 30, 0, 250_000, tzinfo=UTC)
    since_1970 = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    with connection.cursor() as wrapper:
        copy_in(
            wrapper.cursor,
            "copy_probe",
            {"at": ("timestamptz", np.array([since_1970 - EPOCH_2000_US]))},
        )
        wrapper.execute("SELECT at FROM copy_probe")
        assert wrapper.fetchone()[0] == moment
        back = copy_out(
            wrapper.cursor,
            "SELECT %s::timestamptz",
            [moment + timedelta(days=1)],
            {"at": "timestamptz"},
        )
    assert back["at"].tolist() == [since_1970 - EPOCH_2000_US + 86_400_000_000]


def test_no_rows_and_unequal_columns() -> None:
    _table()
    with connection.cursor() as wrapper:
        assert copy_in(wrapper.cursor, "copy_probe", {"n": ("int8", np.zeros(0, np.int64))}) == 0
        back = copy_out(wrapper.cursor, "SELECT n FROM copy_probe", None, {"n": "int8"})
        assert back["n"].dtype == np.int64 and len(back["n"]) == 0
        with pytest.raises(ValueError, match="differ in length"):
            copy_in(
                wrapper.cursor,
                "copy_probe",
                {"n": ("int8", np.zeros(2, np.int64)), "small": ("int4", np.zeros(1, np.int32))},
            )
