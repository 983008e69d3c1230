"""The bench's set-based data (bench.fixtures), against the real database."""

import pytest
from django.db import connection

from bench import fixtures
from engagement.models import User


@pytest.mark.django_db
def test_users_insert_makes_numbered_active_users_without_a_usable_password() -> None:
    # when
    with connection.cursor() as cursor:
        cursor.execute(fixtures.USERS_INSERT + "RETURNING id", ["bench-t-", 3])
        ids = [row[0] for row in cursor.fetchall()]

    # then
    users = list(User.objects.filter(pk__in=ids).order_by("username"))
    assert [user.username for user in users] == ["bench-t-1", "bench-t-2", "bench-t-3"]
    assert all(user.is_active and not user.is_staff for user in users)
    assert not any(user.has_usable_password() for user in users)
