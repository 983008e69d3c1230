"""The admin of the record tables (counted flips, removals): read-only, never COUNTed whole."""

import pytest
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.client import ClientInfo
from engagement.models import CountedFlip, InteractionKind, Like, Removal
from engagement.services import interactions
from engagement.services.counted import interactions_counted_set
from polls.models import CountedFlip as PollsCountedFlip
from polls.services.counted import votes_counted_set
from tests.engagement.test_admin import _full_count_queries
from tests.factories import StaffUserFactory, UserFactory, VideoFactory, VoteFactory

pytestmark = pytest.mark.django_db

RECORD_MODELS: list[type[Model]] = [CountedFlip, Removal, PollsCountedFlip]
CLIENT = ClientInfo(ip="203.0.113.9", device_id="d")


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(StaffUserFactory.create())
    return client


def _one_of_each() -> dict[type[Model], Model]:
    video, user = VideoFactory.create(), UserFactory.create()
    interactions.video_like(user=user, video_id=video.pk, client=CLIENT)
    interactions_counted_set(kind=InteractionKind.LIKE, ids=[Like.objects.get().pk], counted=False)
    interactions.video_unlike(user=user, video_id=video.pk)
    votes_counted_set(ids=[VoteFactory.create().pk], counted=False)
    return {model: model._default_manager.get() for model in RECORD_MODELS}


@pytest.mark.parametrize("model", RECORD_MODELS)
def test_staff_reads_the_records_and_cannot_add_change_or_delete_them(
    staff_client: Client, model: type[Model]
) -> None:
    record = _one_of_each()[model]
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"

    with CaptureQueriesContext(connection) as captured:
        changelist = staff_client.get(reverse(f"{name}_changelist"))
    filtered = staff_client.get(reverse(f"{name}_changelist") + "?counted__exact=0&kind=like")
    change = staff_client.get(reverse(f"{name}_change", args=[record.pk]))
    add = staff_client.get(reverse(f"{name}_add"))
    delete = staff_client.post(reverse(f"{name}_delete", args=[record.pk]), {"post": "yes"})

    assert (changelist.status_code, filtered.status_code, change.status_code) == (200, 200, 200)
    assert str(record.pk) in changelist.content.decode()
    assert _full_count_queries(captured.captured_queries, model._meta.db_table) == []
    assert (add.status_code, delete.status_code) == (403, 403)
    assert model._default_manager.filter(pk=record.pk).exists()
