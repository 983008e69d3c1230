"""The scratch database `integrity_evaluate` creates, fills and drops.

It is a database of its own on the same server (a unique name per run), given the project's
schema by `manage.py migrate` (a child process pointed at it), and reached through a psycopg
connection of its own, which detection's loader reads from (`events_from_likes(database=…)`).
The likes go into
`engagement_like` with one COPY while the table carries no index and no foreign key; then the
constraints that define the data come back — the primary key and the one-like-per-user-and-video
rule — and the read-side indexes are not built (detection reads the whole table in one scan).
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql

from engagement.models import Like, User, Video

COPY_BLOCK_BYTES = 8 << 20


class ScratchError(RuntimeError):
    pass


SCRATCH_PREFIX = "chorus_integrity_eval_"


def _connect(base_alias: str, name: str | None = None) -> psycopg.Connection[Any]:
    """A plain autocommit connection on the base database's server: to the base database (for
    CREATE/DROP DATABASE, which run outside transactions) or to `name`."""
    base = connections.settings[base_alias]
    return psycopg.connect(
        host=base["HOST"] or None,
        port=base["PORT"] or None,
        user=base["USER"] or None,
        password=base["PASSWORD"] or None,
        dbname=name or base["NAME"],
        autocommit=True,
        connect_timeout=10,
    )


class ScratchDatabase:
    def __init__(self, base_alias: str = "default") -> None:
        self.base_alias = base_alias
        suffix = f"{os.getpid()}_{secrets.token_hex(4)}"
        self.name = f"{SCRATCH_PREFIX}{suffix}"
        self.created = False
        self.connection: Any = None

    def create(self) -> None:
        with _connect(self.base_alias) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.created = True
        # a connection of its own (not one of Django's: nothing else in the process reaches it)
        self.connection = _connect(self.base_alias, self.name)

    def migrate(self) -> None:
        """The project's schema, by `manage.py migrate` in a child process pointed at it."""
        db = connections.settings[self.base_alias]
        url = "postgres://{}:{}@{}:{}/{}".format(
            quote(db["USER"] or "", safe=""),
            quote(db["PASSWORD"] or "", safe=""),
            db["HOST"] or "localhost",
            db["PORT"] or 5432,
            quote(self.name, safe=""),
        )
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        }
        done = subprocess.run(
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "migrate",
                "--no-input",
                "-v",
                "0",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise ScratchError(f"migrate of the scratch database failed: {done.stderr[-2000:]}")

    def drop(self) -> None:
        """Drop it (also when create or anything after it failed half-way); idempotent."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.created:
            with _connect(self.base_alias) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )
            self.created = False

    def usernames(self, pks: list[int]) -> dict[int, str]:
        with self.cursor() as cursor:
            cursor.execute(
                sql.SQL("SELECT id, username FROM {} WHERE id = ANY(%s)").format(
                    sql.Identifier(User._meta.db_table)
                ),
                [pks],
            )
            return dict(cursor.fetchall())

    # --- loading ---
    def cursor(self) -> Any:
        return self.connection.cursor()

    def accounts_load(self, account_ids: list[str], at: datetime) -> None:
        """The accounts, numbered from 1 in the file's order; username = the file's id."""
        columns = [
            "id",
            "password",
            "is_superuser",
            "username",
            "first_name",
            "last_name",
            "email",
            "is_staff",
            "is_active",
            "date_joined",
            "display_name",
        ]
        joined = at.isoformat()
        self._copy_text(
            User._meta.db_table,
            columns,
            (
                f"{number}\t!\tf\t{_copy_escaped(account)}\t\t\t\tf\tt\t{joined}\t\n"
                for number, account in enumerate(account_ids, start=1)
            ),
        )

    def videos_load(self, video_creator: list[int], at: datetime) -> None:
        """Videos numbered from 1; the events carry no title, length or publishing time."""
        published = at.isoformat()
        self._copy_text(
            Video._meta.db_table,
            ["id", "creator_id", "title", "caption", "duration_ms", "created_at"],
            (
                f"{number}\t{creator}\t\t\t1\t{published}\n"
                for number, creator in enumerate(video_creator, start=1)
            ),
        )

    def _copy_text(self, table: str, columns: list[str], lines: Iterator[str]) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with self.cursor() as cursor, cursor.copy(statement) as out:
            while block := "".join(itertools.islice(lines, 100_000)):
                out.write(block)

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
                SELECT format('%%I', c.relname), pg_get_indexdef(i.indexrelid), i.indisunique
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = %s::regclass
                  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
                """,
                [table],
            )
            indexes = cursor.fetchall()
            for index, _definition, _unique in indexes:
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
                        "COPY {} (user_id, video_id, created_at, ip, device_id, counted) FROM STDIN"
                    ).format(sql.Identifier(table))
                ) as out,
            ):
                while block := rows.read(COPY_BLOCK_BYTES):
                    out.write(block)
            timings["copy"] = time.perf_counter() - started
            cursor.execute("SET maintenance_work_mem = '512MB'")
            duplicates = 0
            started = time.perf_counter()
            # the rules that define the data come back: the primary key and the unique ones (a
            # constraint, or a unique index as Django makes for a UniqueConstraint with INCLUDE)
            rebuilds = [
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
                )
                for name, definition, kind in constraints
                if kind in ("p", "u")
            ] + [sql.SQL(definition) for _, definition, unique in indexes if unique]
            for add in rebuilds:
                try:
                    cursor.execute(add)
                except psycopg.errors.UniqueViolation:
                    # (autocommit: the failed statement took nothing with it)
                    duplicates += _duplicates_drop(cursor, table)
                    cursor.execute(add)
            timings["constraints"] = time.perf_counter() - started
            started = time.perf_counter()
            cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
            timings["analyze"] = time.perf_counter() - started
        return duplicates


def _copy_escaped(text: str) -> str:
    """Text as a COPY text-format field (the check refused control characters)."""
    return text.replace("\\", "\\\\") if "\\" in text else text


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
