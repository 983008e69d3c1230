"""core.db.indexes_deferred: a bulk load's indexes are built after its rows, as they were."""

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from core.db import indexes_deferred

pytestmark = pytest.mark.django_db(transaction=True)

# A rebuilt rollup table: primary key, one unique constraint.
TABLE = "analytics_videobucket"
# FanLink: primary key, one unique constraint and one plain index.
LINKS = "analytics_fanlink"


def _shape(table: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname",
            [table],
        )
        indexes = cursor.fetchall()
    return {"constraints": constraints, "indexes": indexes}


def _link(cursor: Any, user_id: int, creator_id: int) -> None:
    cursor.execute(
        f"INSERT INTO {LINKS} (user_id, creator_id) VALUES (%s, %s)", [user_id, creator_id]
    )


def test_the_indexes_are_gone_in_the_block_and_back_as_they_were() -> None:
    before = {table: _shape(table) for table in (TABLE, LINKS)}
    assert before[LINKS]["indexes"] and before[TABLE]["constraints"]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {TABLE}, {LINKS}")
        with indexes_deferred([TABLE, LINKS]):
            assert _shape(TABLE) == {"constraints": [], "indexes": []}
            assert _shape(LINKS)["indexes"] == []
            with connection.cursor() as cursor:
                # a duplicate goes in while the unique index is away...
                _link(cursor, 1, 2)
                _link(cursor, 3, 4)
        assert {table: _shape(table) for table in (TABLE, LINKS)} == before
        with connection.cursor() as cursor, pytest.raises(IntegrityError), transaction.atomic():
            _link(cursor, 1, 2)  # ...and the rebuilt one enforces uniqueness again


def test_a_duplicate_loaded_in_the_block_fails_the_rebuild_and_rolls_everything_back() -> None:
    before = _shape(LINKS)
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {LINKS}")
        with indexes_deferred([LINKS]), connection.cursor() as cursor:
            _link(cursor, 1, 2)
            _link(cursor, 1, 2)
    assert _shape(LINKS) == before


def test_it_needs_a_transaction() -> None:
    with pytest.raises(RuntimeError), indexes_deferred([LINKS]):
        pass
    assert _shape(LINKS)["indexes"]
