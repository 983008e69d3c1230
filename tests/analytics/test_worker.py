"""Freshness through a real worker: woken after commit, no consumer call by hand."""

import time
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from analytics.selectors import creator_analytics_document
from analytics.services.consumer import CONSUMER_LOCK
from engagement.models import InteractionKind, Like
from engagement.services.counted import interactions_counted_set
from tests.conftest import wait_until
from tests.factories import UserFactory, VideoFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _consumer_idle_after() -> Iterator[None]:
    """Let the worker finish its analytics pass before the database is flushed (a pass holding
    rollup tables while the flush truncates them would deadlock the flush)."""
    yield
    time.sleep(WAKE_SETTLE_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [CONSUMER_LOCK])
        cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [CONSUMER_LOCK])


WAKE_SETTLE_SECONDS = 2.0


def _likes(creator_id: int) -> int:
    document = creator_analytics_document(creator_id=creator_id, days=7, tz="UTC")
    return int(document["totals"]["likes"])


def test_a_like_and_a_flip_reach_analytics_through_the_worker(
    celery_worker: object, make_client: Callable[..., APIClient]
) -> None:
    creator = UserFactory.create()
    clip = VideoFactory.create(creator=creator)
    fan = make_client(UserFactory.create())
    assert fan.put(f"/api/v1/videos/{clip.pk}/like").status_code == 201
    assert wait_until(lambda: _likes(creator.pk) == 1, timeout=30)
    like = Like.objects.get(video=clip)
    interactions_counted_set(kind=InteractionKind.LIKE, ids=[like.pk], counted=False)
    assert wait_until(lambda: _likes(creator.pk) == 0, timeout=30)


def test_the_commands_rebuild_and_reconcile(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("analytics_rebuild")
    call_command("analytics_reconcile", "--dry-run")
    assert "0 differences" in capsys.readouterr().out
