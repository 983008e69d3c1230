"""The `Idempotency-Key` contract (SPEC §2.2): retried POSTs get the first answer."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from core.idempotency import idempotency_keys_purge
from core.models import IdempotencyRecord
from engagement.models import Comment, DeviceToken, User, Video
from engagement.services.counters import video_counts
from tests.conftest import PROBLEM_CONTENT_TYPE, assert_problem, database_state, unknown_id
from tests.factories import UserFactory, VideoFactory

pytestmark = pytest.mark.django_db


def _post_comment(client: APIClient, video: Video, text: Any, key: str | None = None) -> Any:
    extra: dict[str, Any] = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(f"/api/v1/videos/{video.pk}/comments", {"text": text}, **extra)


def test_a_replay_returns_the_first_answer_and_writes_nothing(
    client_for_user: APIClient, user: User
) -> None:
    video = VideoFactory.create()
    first = _post_comment(client_for_user, video, "first!", key="key-1")
    assert first.status_code == 201
    assert not first.has_header("Idempotent-Replayed")
    before = database_state()

    replay = _post_comment(client_for_user, video, "first!", key="key-1")

    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay["Content-Type"] == first["Content-Type"] == "application/json"
    assert replay["Idempotent-Replayed"] == "true"
    assert database_state() == before
    assert list(Comment.objects.filter(video=video).values_list("text", flat=True)) == ["first!"]
    assert video_counts([video.pk])[video.pk]["comments"] == 1
    record = IdempotencyRecord.objects.get(user=user, key="key-1")
    assert record.response_status == 201
    assert json.loads(record.response_body) == first.json()


def test_the_same_key_with_a_different_body_is_409_and_writes_nothing(
    client_for_user: APIClient,
) -> None:
    video = VideoFactory.create()
    assert _post_comment(client_for_user, video, "first!", key="key-1").status_code == 201
    before = database_state()

    response = _post_comment(client_for_user, video, "something else", key="key-1")

    assert_problem(
        response,
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request.",
    )
    assert database_state() == before
    assert list(Comment.objects.filter(video=video).values_list("text", flat=True)) == ["first!"]


def test_the_same_key_on_another_path_is_409(client_for_user: APIClient) -> None:
    video, other_video = VideoFactory.create(), VideoFactory.create()
    assert _post_comment(client_for_user, video, "hi", key="key-1").status_code == 201
    before = database_state()

    response = _post_comment(client_for_user, other_video, "hi", key="key-1")

    assert_problem(
        response,
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request.",
    )
    assert database_state() == before
    assert other_video.comments.count() == 0


def test_keys_belong_to_one_user(make_client: Callable[..., APIClient]) -> None:
    video = VideoFactory.create()
    alice, bob = UserFactory.create(), UserFactory.create()
    first = _post_comment(make_client(alice), video, "same text", key="shared-key")

    second = _post_comment(make_client(bob), video, "same text", key="shared-key")

    assert first.status_code == 201
    assert second.status_code == 201
    assert not second.has_header("Idempotent-Replayed")
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["user"]["id"] == bob.pk
    assert Comment.objects.filter(video=video).count() == 2
    assert IdempotencyRecord.objects.filter(key="shared-key").count() == 2


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9", "tab\there"])
def test_an_invalid_key_is_400_and_writes_nothing(client_for_user: APIClient, key: str) -> None:
    video = VideoFactory.create()
    before = database_state()

    response = _post_comment(client_for_user, video, "hi", key=key)

    assert_problem(
        response,
        400,
        "invalid_idempotency_key",
        "Idempotency-Key must be 1-255 printable ASCII characters.",
        errors={"Idempotency-Key": ["1-255 printable ASCII characters."]},
    )
    assert database_state() == before


def test_the_longest_valid_key_is_accepted(client_for_user: APIClient) -> None:
    video = VideoFactory.create()
    key = "k" * 255

    first = _post_comment(client_for_user, video, "hi", key=key)
    replay = _post_comment(client_for_user, video, "hi", key=key)

    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert video.comments.count() == 1


def test_4xx_answers_are_replayed_too(client_for_user: APIClient) -> None:
    video = VideoFactory.create()
    first = _post_comment(client_for_user, video, 5, key="bad-body")
    assert first.status_code == 400
    before = database_state()

    replay = _post_comment(client_for_user, video, 5, key="bad-body")

    assert replay.status_code == 400
    assert replay.content == first.content
    assert replay["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["code"] == "invalid"
    assert database_state() == before


def test_a_404_is_replayed(client_for_user: APIClient) -> None:
    url = f"/api/v1/videos/{unknown_id(Video)}/shares"
    first = client_for_user.post(url, {}, HTTP_IDEMPOTENCY_KEY="missing")
    assert first.status_code == 404
    before = database_state()

    replay = client_for_user.post(url, {}, HTTP_IDEMPOTENCY_KEY="missing")

    assert replay.status_code == 404
    assert replay.content == first.content
    assert replay["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert replay["Idempotent-Replayed"] == "true"
    assert database_state() == before


def test_the_first_answer_is_replayed_even_when_the_state_changed(
    client_for_user: APIClient,
) -> None:
    video = VideoFactory.create()
    url = f"/api/v1/videos/{video.pk}/shares"
    first = client_for_user.post(url, {"channel": "sms"}, HTTP_IDEMPOTENCY_KEY="shared")
    assert first.status_code == 201
    Video.objects.filter(pk=video.pk).delete()

    replay = client_for_user.post(url, {"channel": "sms"}, HTTP_IDEMPOTENCY_KEY="shared")

    # the answer is bound to the key, not recomputed
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay["Idempotent-Replayed"] == "true"


def test_an_expired_answer_is_not_replayed(client_for_user: APIClient, user: User) -> None:
    video = VideoFactory.create()
    assert _post_comment(client_for_user, video, "again", key="old").status_code == 201
    expired = timezone.now() - settings.IDEMPOTENCY_KEY_TTL - timedelta(seconds=1)
    IdempotencyRecord.objects.filter(user=user, key="old").update(created_at=expired)

    response = _post_comment(client_for_user, video, "again", key="old")

    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert video.comments.count() == 2
    assert IdempotencyRecord.objects.filter(user=user, key="old").count() == 1


def test_requests_without_a_key_are_not_recorded(client_for_user: APIClient) -> None:
    video = VideoFactory.create()

    first = _post_comment(client_for_user, video, "same")
    second = _post_comment(client_for_user, video, "same")

    assert first.status_code == second.status_code == 201
    assert video.comments.count() == 2
    assert IdempotencyRecord.objects.count() == 0


def test_keys_on_put_and_delete_are_ignored(client_for_user: APIClient) -> None:
    # PUT and DELETE are idempotent by themselves; only POSTs use the key
    video = VideoFactory.create()
    url = f"/api/v1/videos/{video.pk}/like"

    first = client_for_user.put(url, HTTP_IDEMPOTENCY_KEY="put-key")
    second = client_for_user.put(url, HTTP_IDEMPOTENCY_KEY="put-key")
    removed = client_for_user.delete(url, HTTP_IDEMPOTENCY_KEY="put-key")

    assert (first.status_code, second.status_code, removed.status_code) == (201, 200, 204)
    assert not second.has_header("Idempotent-Replayed")
    assert IdempotencyRecord.objects.count() == 0


def test_a_204_answer_is_replayed(client_for_user: APIClient, user: User) -> None:
    first = client_for_user.post("/api/v1/auth/logout-all", HTTP_IDEMPOTENCY_KEY="bye")
    assert first.status_code == 204

    # the token is gone, so the replay has to come from a fresh login
    _, token = DeviceToken.objects.create(user=user)
    client_for_user.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    replay = client_for_user.post("/api/v1/auth/logout-all", HTTP_IDEMPOTENCY_KEY="bye")

    assert replay.status_code == 204
    assert replay.content == b""
    assert replay["Idempotent-Replayed"] == "true"
    # the replay did not run: the new token survives
    assert DeviceToken.objects.filter(user=user).count() == 1


def test_purge_deletes_only_records_older_than_the_ttl(user: User) -> None:
    old = IdempotencyRecord.objects.create(
        user=user, key="old", request_fingerprint="a", response_status=201
    )
    young = IdempotencyRecord.objects.create(
        user=user, key="young", request_fingerprint="b", response_status=201
    )
    IdempotencyRecord.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - settings.IDEMPOTENCY_KEY_TTL - timedelta(minutes=1)
    )

    assert idempotency_keys_purge() == 1

    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [young.pk]


@pytest.mark.django_db(transaction=True)
def test_a_server_error_keeps_neither_the_answer_nor_the_effect(
    make_client: Callable[..., APIClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a comment service that writes its row and then fails unexpectedly
    from engagement.api import views
    from engagement.services import interactions

    real = interactions.comment_create

    def write_then_fail(**kwargs: Any) -> Comment:
        real(**kwargs)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(views.interactions, "comment_create", write_then_fail)
    user = UserFactory.create()
    video = VideoFactory.create()
    client = make_client(user)
    client.raise_request_exception = False

    # when a keyed POST fails with a 500
    response = client.post(
        f"/api/v1/videos/{video.pk}/comments",
        {"text": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-500",
    )

    # then the comment it wrote was rolled back with the claim, and a retry runs again
    assert response.status_code == 500
    assert Comment.objects.count() == 0
    assert video_counts([video.pk])[video.pk]["comments"] == 0
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.setattr(views.interactions, "comment_create", real)
    retry = client.post(
        f"/api/v1/videos/{video.pk}/comments",
        {"text": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-500",
    )
    assert retry.status_code == 201
    assert Comment.objects.count() == 1
    record = IdempotencyRecord.objects.get()
    assert record.response_status == 201
