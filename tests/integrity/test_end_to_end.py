"""End to end through the API and a real worker (issue 10): a bot group likes a sticker's videos
and votes on its poll; the light pass, run by the worker on the `integrity` queue, confirms the
group; the poll's tally, the videos' like counts and the bots' grants drop to the genuine
figures; a staff dismissal restores every one of them."""

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from integrity.models import Case
from integrity.services.cases import case_dismiss
from rewards.models import Grant
from tests.conftest import wait_until
from tests.factories import (
    RewardRuleFactory,
    StaffUserFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
)
from tests.integrity import likes_insert
from tests.polls import option_ids

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

ClientMaker = Callable[..., APIClient]


def _background(videos: list[int]) -> None:
    """Genuine likes of the last hours (many people, own phones and homes), straight into the
    table: what the detection weighs a group against."""
    rng = random.Random(11)
    people = [UserFactory.create().pk for _ in range(80)]
    rows = []
    now = timezone.now()
    for n, person in enumerate(people):
        for video in rng.sample(videos, rng.randint(3, 12)):
            at = now - timedelta(seconds=rng.uniform(300, 5 * 3600))
            rows.append((person, video, at, f"phone-{n}", f"81.{n}.3.2"))
    likes_insert(rows)


def _likes(client: APIClient, video: int) -> int:
    return int(client.get(f"/api/v1/videos/{video}").json()["counts"]["likes"])


def _tally(client: APIClient, sticker: int) -> list[int]:
    return [o["votes"] for o in client.get(f"/api/v1/stickers/{sticker}/results").json()["options"]]


def test_a_bot_group_is_discounted_by_the_light_pass_and_restored_by_a_dismissal(
    celery_worker: object, make_client: ClientMaker
) -> None:
    creator = UserFactory.create()
    targets = [VideoFactory.create(creator=creator) for _ in range(3)]
    poll = StickerFactory.create(video=targets[0], options=["A", "B"])
    a, b = option_ids(poll)
    RewardRuleFactory.create(threshold=2)  # 2 likes -> a badge
    _background([VideoFactory.create().pk for _ in range(40)])
    genuine = [UserFactory.create() for _ in range(3)]
    for person in genuine:
        client = make_client(person)
        assert client.put(f"/api/v1/videos/{targets[0].pk}/like").status_code == 201
        assert client.post(
            f"/api/v1/stickers/{poll.pk}/votes", {"option_ids": [a]}, format="json"
        ).status_code in (200, 201)
    bots = [UserFactory.create() for _ in range(10)]
    for bot in bots:
        client = make_client(bot, device_id=f"farm-{bot.pk % 2}")
        for target in targets:
            assert client.put(f"/api/v1/videos/{target.pk}/like").status_code == 201
        assert client.post(
            f"/api/v1/stickers/{poll.pk}/votes", {"option_ids": [b]}, format="json"
        ).status_code in (200, 201)
    viewer = make_client(creator)
    bot_ids = {bot.pk for bot in bots}
    # the bots' badges are granted by the worker, the tally refreshed: the bought figures
    assert wait_until(lambda: Grant.objects.filter(user_id__in=bot_ids).count() == 10, 60)
    assert wait_until(lambda: _tally(viewer, poll.pk) == [3, 10], 30)
    assert [_likes(viewer, t.pk) for t in targets] == [13, 10, 10]

    # when the light pass runs on the worker
    from integrity.tasks import integrity_light

    integrity_light.delay()
    assert wait_until(lambda: Case.objects.filter(status=Case.Status.CONFIRMED).exists(), 60)

    # then exactly the bots are discounted, everywhere
    case = Case.objects.get()
    assert case.auto_confirmed
    assert set(case.accounts.values_list("user_id", flat=True)) == bot_ids
    assert [_likes(viewer, t.pk) for t in targets] == [3, 0, 0]
    assert wait_until(lambda: _tally(viewer, poll.pk) == [3, 0], 30)
    assert not Grant.objects.filter(user_id__in=bot_ids, revoked_at__isnull=True).exists()

    # and a staff dismissal restores every figure
    case_dismiss(case, by=StaffUserFactory.create(), note="checked: a real fan club")
    assert [_likes(viewer, t.pk) for t in targets] == [13, 10, 10]
    assert wait_until(lambda: _tally(viewer, poll.pk) == [3, 10], 30)
    assert Grant.objects.filter(user_id__in=bot_ids, revoked_at__isnull=True).count() == 10
