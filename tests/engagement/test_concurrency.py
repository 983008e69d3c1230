"""SPEC §2.2 under real concurrency: threads hitting the real database through the full API."""

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection
from rest_framework.test import APIClient

from engagement.models import Like
from engagement.services.counters import video_counts
from tests.factories import UserFactory, VideoFactory


def _run_concurrently(count: int, action: Callable[[int], int]) -> list[int]:
    """Start `count` threads that wait on one barrier, then each calls action(index)."""
    barrier = threading.Barrier(count)
    results: list[int] = [0] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = action(index)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.django_db(transaction=True)
def test_32_simultaneous_likes_from_one_user_make_exactly_one_like(
    make_client: Callable[..., APIClient],
) -> None:
    # given one user with 32 clients (one per thread) and a video
    user = UserFactory.create()
    video = VideoFactory.create()
    clients = [make_client(user) for _ in range(32)]

    # when all 32 send PUT like at the same moment
    statuses = _run_concurrently(
        32, lambda index: clients[index].put(f"/api/v1/videos/{video.pk}/like").status_code
    )

    # then exactly one was created, the rest saw it already there, and the count is one
    assert Counter(statuses) == {201: 1, 200: 31}
    assert Like.objects.filter(user=user, video=video).count() == 1
    assert video_counts([video.pk])[video.pk]["likes"] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_likes_from_many_users_are_all_counted(
    make_client: Callable[..., APIClient],
) -> None:
    video = VideoFactory.create()
    users = UserFactory.create_batch(24)
    clients = [make_client(user) for user in users]

    statuses = _run_concurrently(
        24, lambda index: clients[index].put(f"/api/v1/videos/{video.pk}/like").status_code
    )

    assert statuses == [201] * 24
    assert Like.objects.filter(video=video).count() == 24
    assert video_counts([video.pk])[video.pk]["likes"] == 24


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_idempotency_key_run_once(
    make_client: Callable[..., APIClient],
) -> None:
    user = UserFactory.create()
    video = VideoFactory.create()
    clients = [make_client(user) for _ in range(16)]

    statuses = _run_concurrently(
        16,
        lambda index: (
            clients[index]
            .post(
                f"/api/v1/videos/{video.pk}/comments",
                {"text": "first!"},
                format="json",
                HTTP_IDEMPOTENCY_KEY="same-key",
            )
            .status_code
        ),
    )

    # one request ran; the others waited for its claim to commit and replayed its answer
    assert statuses == [201] * 16
    assert video.comments.count() == 1
    assert video_counts([video.pk])[video.pk]["comments"] == 1
