"""Integrity tests. `likes_insert` writes like rows with their times, devices and addresses in one
statement (the detection tests' genuine backgrounds and farms)."""

from datetime import datetime

from django.db import connection

from engagement.models import Like


def likes_insert(rows: list[tuple[int, int, datetime, str, str]]) -> None:
    """(user, video, at, device, ip) rows, inserted as counted likes with their times."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Like._meta.db_table} (user_id, video_id, created_at, device_id, ip,
                                                  counted)
                SELECT *, true FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[],
                                           %s::text[], %s::inet[])""",
            [list(column) for column in zip(*rows, strict=True)],
        )
