"""Freshness through a real worker: woken after commit, no consumer call by hand."""

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from analytics.selectors import creator_analytics_document
from config.settings import base as base_settings
from engagement.models import InteractionKind, Like
from engagement.services.counted import interactions_counted_set
from tests.conftest import wait_until
from tests.factories import UserFactory, VideoFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _analytics_woken_by_commits(settings: Any) -> None:
    """The test settings wake only the rewards consumer; here commits wake analytics too."""
    settings.WAKE_ON_COMMIT = base_settings.WAKE_ON_COMMIT


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
