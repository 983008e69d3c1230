"""The per-request health check (core/postgres/base.py) finds a dropped connection before the
request uses it, and costs a healthy idle connection no round trip."""

import select
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections

pytestmark = pytest.mark.django_db(transaction=True)


def _dsn() -> str:
    db = settings.DATABASES["default"]
    return (
        f"host={db['HOST']} port={db['PORT']} dbname={db['NAME']} "
        f"user={db['USER']} password={db['PASSWORD']}"
    )


def _request_starts() -> None:
    # What Django does for every request (close_old_connections on request_started): the next
    # query checks the connection first.
    connection.close_if_unusable_or_obsolete()


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _count_cursors(raw: Any) -> list[int]:
    """Counts the cursors opened on the raw connection from now on (each query takes one)."""
    opened: list[int] = []
    real_cursor = raw.cursor

    def cursor(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        return real_cursor(*args, **kwargs)

    raw.cursor = cursor
    return opened


def test_the_engine_is_djangos_postgresql_backend_with_this_check() -> None:
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert connection.vendor == "postgresql"
    assert type(connections["default"]).__module__ == "core.postgres.base"


def test_a_terminated_backend_is_replaced_before_the_request_s_first_query() -> None:
    before = _backend_pid()
    with psycopg.connect(_dsn(), autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [before]).fetchone() == (True,)
    # the server closes the socket (with its termination notice) as the backend exits
    readable, _, _ = select.select([connection.connection.pgconn.socket], [], [], 10)
    assert readable
    _request_starts()
    after = _backend_pid()  # no OperationalError: the dead connection was closed and replaced
    assert after != before


def test_a_healthy_idle_connection_is_not_queried() -> None:
    _backend_pid()
    raw = connection.connection
    sent = _count_cursors(raw)
    try:
        _request_starts()
        connection.close_if_health_check_failed()
        assert connection.health_check_done  # type: ignore[attr-defined]
        assert connection.connection is raw
        assert sent == []  # no `SELECT 1`
    finally:
        del raw.cursor


def test_a_connection_inside_a_transaction_is_checked_with_a_query() -> None:
    _backend_pid()
    raw = connection.connection
    raw.execute("BEGIN")
    try:
        sent = _count_cursors(raw)
        try:
            assert connection.is_usable()
            assert sent == [1]
        finally:
            del raw.cursor
    finally:
        raw.execute("ROLLBACK")
