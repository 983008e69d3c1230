"""Small SQL helpers for writes the ORM cannot express in one statement."""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import perf_counter
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models

from core.metrics.timing import request_times


def sql_literals(values: Iterable[Any]) -> str:
    """Constants the code defines (a model's choices, e.g. `Sticker.State.OPEN`) as SQL literals
    for a named statement: `'open', 'closed'`, for `state IN (…)`. Never for input. Literals,
    not parameters: the planner matches them against a partial index's predicate."""
    return ", ".join(
        "'" + str(getattr(value, "value", value)).replace("'", "''") + "'" for value in values
    )


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


def fetch_prepared(sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one hot statement (that returns rows) as a server-side prepared statement; its rows.

    For the few statements every vote or read runs (see docs/benchmarks.md): PostgreSQL parses
    and plans them once per connection instead of on every request, and the parameters travel
    bound (not quoted into the text by Python). It runs on Django's connection, in its current
    transaction, with Django's error wrapping and health checks, through one psycopg cursor kept
    per connection; it shows in Django's query log when queries are logged (so query budgets
    count it). Other queries stay unprepared: the connection's automatic threshold is set out
    of reach (settings DATABASES OPTIONS), and DB_PREPARED_STATEMENTS=false (for a pooler that
    cannot keep prepared statements) turns preparing off, so this runs as a plain bound query.
    """
    db = connections[DEFAULT_DB_ALIAS]
    db.validate_no_broken_transaction()
    db.close_if_health_check_failed()
    db.ensure_connection()
    raw = db.connection
    cursor: psycopg.Cursor[Any] | None = getattr(db, "_chorus_prepared_cursor", None)
    if cursor is None or cursor.connection is not raw:
        cursor = psycopg.Cursor(raw)
        db._chorus_prepared_cursor = cursor  # type: ignore[attr-defined]
    # (Django's execute wrappers do not see this cursor: its time is added to the request's here,
    # and the statement to Django's query log when queries are logged — DEBUG, or a test's
    # django_assert_num_queries — so query budgets count it like any other)
    times = request_times.get()
    started = perf_counter()
    try:
        with db.wrap_database_errors:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall()
    finally:
        elapsed = perf_counter() - started
        if times is not None:
            times.database += elapsed
        if db.queries_logged:
            db.queries_log.append(
                {"sql": f"/* prepared */ {sql} /* {params!r} */", "time": f"{elapsed:.3f}"}
            )


def counted_flip_cte(table: str, *, only_parents: str | None, returning: str) -> str:
    """`WITH flipped AS (…)`: set `counted = %(counted)s` on the rows `%(ids)s` that are not
    already so, taking their row locks in id order, and return `returning` of each.

    With `only_parents` (a column such as `video_id`), only rows whose parent is in
    `%(parents)s` (the parents the caller has locked) change. Shared by engagement's and polls'
    set-based flips (SPEC §2.4), so the lock order that keeps them deadlock-free is written once;
    the caller appends the SELECT that summarises `flipped`.
    """
    only_locked = f"AND {only_parents} = ANY(%(parents)s::bigint[])" if only_parents else ""
    return f"""
        WITH flipped AS (
            UPDATE {table} AS t SET counted = %(counted)s
            WHERE t.id IN (
                SELECT id FROM {table}
                WHERE id = ANY(%(ids)s::bigint[]) AND counted <> %(counted)s {only_locked}
                ORDER BY id FOR UPDATE
            ) AND t.counted <> %(counted)s
            RETURNING {returning}
        )
    """


@contextmanager
def indexes_deferred(tables: Sequence[str]) -> Iterator[None]:
    """Bulk loading (PostgreSQL's "Populating a Database"): drop the tables' indexes, and the
    primary-key, unique and exclusion constraints they back, for the block, then build each of
    them again from its saved definition: one sort per index instead of one index insertion per
    row. Only inside a transaction that holds the tables exclusively (after a TRUNCATE): nobody
    sees them without their indexes, and an error rolls the drop back with everything else.
    Nothing may reference the constraints from other tables (a foreign key to a dropped key
    would block the drop)."""
    if not tables:
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("indexes_deferred needs a transaction")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT format('%%s', c.conrelid::regclass), format('%%I', c.conname),
                   pg_get_constraintdef(c.oid)
            FROM pg_constraint c
            WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('p', 'u', 'x')
            ORDER BY c.conrelid, c.conname
            """,
            [list(tables)],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            """
            SELECT format('%%s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = ANY(%s::regclass[])
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            ORDER BY i.indexrelid
            """,
            [list(tables)],
        )
        indexes = cursor.fetchall()
        for table, name, _ in constraints:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
    yield
    with connection.cursor() as cursor:
        for table, name, definition in constraints:
            cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        for _, definition in indexes:
            cursor.execute(definition)


@contextmanager
def without_parallel_workers() -> Iterator[None]:
    """The block's statements run in their own backend only (no parallel workers).

    For computations on the machines that serve requests: a parallel plan takes a core per
    worker at once from the web processes next to it. A session setting set and reset, not a
    transaction (as `SET LOCAL` would need): a computation that reads many tables one by one
    must not hold their locks all along (a TRUNCATE waiting between two of them would deadlock
    with it)."""
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET max_parallel_workers_per_gather")
        except DatabaseError:
            # An aborted transaction: its rollback undoes the SET made in it. Out of one, the
            # connection is broken: drop it (the next one starts with the default).
            if not connection.in_atomic_block:
                connection.close()
