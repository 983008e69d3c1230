"""The scratch database `integrity_evaluate` creates, fills and drops.

It is a database of its own on the same server (a unique name per run), given the project's
schema by `migrate`, registered as a Django database alias for the run, so that detection reads
it with the same code as production (integrity.event_source). The likes go into
`engagement_like` with one COPY while the table carries no index and no foreign key; then the
constraints that define the data come back — the primary key and the one-like-per-user-and-video
rule — and the read-side indexes are not built (detection reads the whole table in one scan).
"""

from __future__ import annotations

import copy
import os
import secrets
import time
from pathlib import Path
from typing import Any

import psycopg
from django.core.management import call_command
from django.db import connections
from psycopg import sql

from engagement.models import Like, User, Video

COPY_BLOCK_BYTES = 8 << 20
SCRATCH_PREFIX = "chorus_integrity_eval_"


def _admin_connect(base_alias: str) -> psycopg.Connection[Any]:
    """A plain autocommit connection to the base database (CREATE/DROP DATABASE run outside
    transactions)."""
    base = connections.settings[base_alias]
    return psycopg.connect(
        host=base["HOST"] or None,
        port=base["PORT"] or None,
        user=base["USER"] or None,
        password=base["PASSWORD"] or None,
        dbname=base["NAME"],
        autocommit=True,
        connect_timeout=10,
    )


class ScratchDatabase:
    def __init__(self, base_alias: str = "default") -> None:
        self.base_alias = base_alias
        suffix = f"{os.getpid()}_{secrets.token_hex(4)}"
        self.name = f"{SCRATCH_PREFIX}{suffix}"
        self.alias = f"integrity_scratch_{suffix}"
        self.created = False

    def create(self) -> None:
        with _admin_connect(self.base_alias) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.created = True
        settings = copy.deepcopy(connections.settings[self.base_alias])
        settings["NAME"] = self.name
        settings["CONN_MAX_AGE"] = 0
        settings["TEST"] = {**settings.get("TEST", {}), "NAME": self.name}
        connections.settings[self.alias] = settings

    def migrate(self) -> None:
        call_command(
            "migrate", database=self.alias, interactive=False, verbosity=0, skip_checks=True
        )

    def drop(self) -> None:
        """Drop it (also when create or anything after it failed half-way); idempotent."""
        if self.alias in connections.settings:
            try:
                connections[self.alias].close()
            finally:
                try:
                    del connections[self.alias]
                except AttributeError:
                    pass
                del connections.settings[self.alias]
        if self.created:
            with _admin_connect(self.base_alias) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )
            self.created = False

    # --- loading ---
    def cursor(self) -> Any:
        connection = connections[self.alias]
        connection.ensure_connection()
        return connection.connection.cursor()

    def accounts_load(self, account_ids: list[str], at: Any) -> None:
        """The accounts, numbered from 1 in the file's order; username = the file's id."""
        columns = (
            "id password is_superuser username first_name last_name email is_staff is_active "
            "date_joined display_name"
        ).split()
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(User._meta.db_table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self.cursor() as cursor, cursor.copy(statement) as out:
            for number, account in enumerate(account_ids, start=1):
                out.write_row((number, "!", False, account, "", "", "", False, True, at, ""))

    def videos_load(self, video_creator: list[int], at: Any) -> None:
        """Videos numbered from 1; the events carry no title, length or publishing time."""
        statement = sql.SQL(
            "COPY {} (id, creator_id, title, caption, duration_ms, created_at) FROM STDIN"
        ).format(sql.Identifier(Video._meta.db_table))
        with self.cursor() as cursor, cursor.copy(statement) as out:
            for number, creator in enumerate(video_creator, start=1):
                out.write_row((number, creator, "", "", 1, at))

    def likes_load(self, rows_path: Path, timings: dict[str, float]) -> int:
        """COPY the checked rows into engagement_like without its indexes; restore the primary
        key and the one-like rule (dropping later duplicates: the earliest like stays). Returns
        how many duplicates went."""
        table = Like._meta.db_table
        with self.cursor() as cursor:
            cursor.execute(
                """
                SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint
                WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f', 'x')
                ORDER BY contype = 'p', contype = 'u'
                """,
                [table],
            )
            constraints = cursor.fetchall()
            cursor.execute(
                """
                SELECT format('%%I', c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = %s::regclass
                  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
                """,
                [table],
            )
            indexes = [row[0] for row in cursor.fetchall()]
            for index in indexes:
                cursor.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
            for name, _definition, _kind in constraints:
                cursor.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {} CASCADE").format(
                        sql.Identifier(table), sql.Identifier(name)
                    )
                )
            cursor.execute(sql.SQL("ALTER TABLE {} SET UNLOGGED").format(sql.Identifier(table)))
            started = time.perf_counter()
            with (
                rows_path.open("rb") as rows,
                cursor.copy(
                    sql.SQL(
                        "COPY {} (user_id, video_id, created_at, ip, device_id, counted) "
                        "FROM STDIN"
                    ).format(sql.Identifier(table))
                ) as out,
            ):
                while block := rows.read(COPY_BLOCK_BYTES):
                    out.write(block)
            timings["copy"] = time.perf_counter() - started
            cursor.execute("SET maintenance_work_mem = '512MB'")
            duplicates = 0
            started = time.perf_counter()
            for name, definition, kind in constraints:
                if kind not in ("p", "u"):
                    continue
                add = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
                )
                try:
                    cursor.execute(add)
                except psycopg.errors.UniqueViolation:
                    # (Django's connections autocommit: the failed statement took nothing with it)
                    duplicates += _duplicates_drop(cursor, table)
                    cursor.execute(add)
            timings["constraints"] = time.perf_counter() - started
            started = time.perf_counter()
            cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
            timings["analyze"] = time.perf_counter() - started
        return duplicates


def _duplicates_drop(cursor: Any, table: str) -> int:
    cursor.execute(
        sql.SQL(
            """
            DELETE FROM {table} AS l USING (
                SELECT id, row_number() OVER (
                    PARTITION BY user_id, video_id ORDER BY created_at, id
                ) AS nth FROM {table}
            ) AS d
            WHERE l.id = d.id AND d.nth > 1
            """
        ).format(table=sql.Identifier(table))
    )
    return int(cursor.rowcount)
