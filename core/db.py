"""Small SQL helpers for writes the ORM cannot express in one statement."""

from collections.abc import Mapping
from typing import Any

from django.db import connection, models


def insert_ignoring_conflict(
    model: type[models.Model], values: Mapping[str, Any], conflict_fields: list[str]
) -> int | None:
    """INSERT … ON CONFLICT (fields) DO NOTHING RETURNING id.

    Returns the new row's id, or None when a row with the same conflict fields exists (also when
    it was inserted concurrently: PostgreSQL waits for the other transaction, then skips).
    """
    meta = model._meta
    columns = []
    params = []
    for name, value in values.items():
        field = meta.get_field(name)
        columns.append(connection.ops.quote_name(str(field.column)))  # type: ignore[union-attr]
        params.append(field.get_db_prep_save(value, connection))  # type: ignore[union-attr]
    conflict = ", ".join(
        connection.ops.quote_name(str(meta.get_field(name).column))  # type: ignore[union-attr]
        for name in conflict_fields
    )
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(params))}) "
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {connection.ops.quote_name(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None
