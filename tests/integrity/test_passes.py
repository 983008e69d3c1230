"""The detection passes against the database: a lockstep farm's likes are read by COPY,
detected, and its case confirmed automatically (its likes stop counting, the videos' counts
drop to the genuine ones); a pass meeting the finding again opens nothing; a dismissal sticks."""

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from engagement.models import Like, Video
from engagement.services.counters import video_counters_recount_many, video_counts
from integrity.models import Case
from integrity.services.cases import case_dismiss
from integrity.services.passes import integrity_pass
from tests.factories import StaffUserFactory, UserFactory, VideoFactory
from tests.integrity import likes_insert

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


Row = tuple[int, int, datetime, str, str]


def _genuine(
    rng: random.Random,
    people: int,
    videos: list[Video],
    likes: tuple[int, int],
    address: Callable[[int], str] = lambda n: f"81.{n}.{n % 7}.2",
) -> list[Row]:
    """Genuine likes: spread over five hours on videos of their choice, each person on their
    own phone, behind `address(n)` (their home by default)."""
    rows = []
    for n in range(people):
        person = UserFactory.create().pk
        for video in rng.sample(videos, rng.randint(*likes)):
            at = NOW - timedelta(seconds=rng.uniform(60, 5 * 3600))
            rows.append((person, video.pk, at, f"phone-{n}", address(n)))
    return rows


def _together(
    rng: random.Random,
    accounts: list[int],
    targets: list[Video],
    context: Callable[[int], tuple[str, str]],
) -> list[Row]:
    """The accounts like each target within 150 s of each other, 40 minutes apart."""
    rows = []
    for t, target in enumerate(targets):
        start = NOW - timedelta(hours=4) + timedelta(minutes=40 * t)
        for k, account in enumerate(accounts):
            at = start + timedelta(seconds=rng.uniform(0, 150))
            rows.append((account, target.pk, at, *context(k)))
    return rows


def _world() -> tuple[list[Video], list[Video], list[int]]:
    rng = random.Random(3)
    creator = UserFactory.create()
    videos = [VideoFactory.create(creator=creator) for _ in range(200)]
    targets = [VideoFactory.create() for _ in range(5)]
    rows = _genuine(rng, 120, videos, (3, 15))
    bots = [UserFactory.create().pk for _ in range(15)]
    rows += _together(
        rng, bots, targets, lambda k: (f"farm-{bots[k] % 3}", f"45.8.1.{bots[k] % 250}")
    )
    likes_insert(rows)
    video_counters_recount_many(video_ids=[v.pk for v in videos + targets])
    return videos, targets, bots


def _counted_likes(video_ids: list[int]) -> int:
    return Like.objects.filter(video_id__in=video_ids, counted=True).count()


def test_the_light_pass_confirms_the_farm_and_only_the_farm() -> None:
    videos, targets, bots = _world()
    genuine_before = _counted_likes([v.pk for v in videos])
    target_ids = [t.pk for t in targets]
    assert _counted_likes(target_ids) == 75

    report = integrity_pass(window=timedelta(hours=6), now=NOW)

    # (weak co-liking groups among the genuine are findings, never cases)
    assert report.ran and report.findings >= 1 and report.opened == report.confirmed == 1
    case = Case.objects.get()
    assert case.status == Case.Status.CONFIRMED and case.auto_confirmed
    assert set(case.accounts.values_list("user_id", flat=True)) == set(bots)
    assert _counted_likes(target_ids) == 0
    assert _counted_likes([v.pk for v in videos]) == genuine_before
    assert [video_counts(target_ids)[t]["likes"] for t in target_ids] == [0] * 5

    # a second pass meets the same finding: nothing new
    again = integrity_pass(window=timedelta(hours=6), now=NOW + timedelta(minutes=3))
    assert again.existing == 1 and again.opened == 0
    assert Case.objects.count() == 1

    # staff dismiss it: every like counts again, and the next pass does not reopen it
    case_dismiss(case, by=StaffUserFactory.create(), note="a fan club event")
    assert _counted_likes(target_ids) == 75
    assert [video_counts(target_ids)[t]["likes"] for t in target_ids] == [15] * 5
    after = integrity_pass(window=timedelta(hours=6), now=NOW + timedelta(minutes=6))
    assert after.refused == 1 and after.opened == 0
    assert _counted_likes(target_ids) == 75


def test_a_pass_over_genuine_activity_only_opens_nothing() -> None:
    rng = random.Random(5)
    creator = UserFactory.create()
    videos = [VideoFactory.create(creator=creator) for _ in range(200)]
    rows = _genuine(rng, 150, videos, (2, 12), lambda n: f"100.64.0.{n % 20}")
    likes_insert(rows)
    report = integrity_pass(window=timedelta(hours=6), now=NOW)
    assert report.ran and report.likes == len(rows) and report.opened == 0
    assert not Case.objects.exists()


def test_a_group_with_behaviour_alone_waits_for_staff() -> None:
    # fifteen accounts on their own phones and homes like five fresh videos together, and
    # nobody else does: lockstep with no independent evidence is a case for staff, open
    rng = random.Random(6)
    creator = UserFactory.create()
    videos = [VideoFactory.create(creator=creator) for _ in range(200)]
    targets = [VideoFactory.create() for _ in range(5)]
    crew = [UserFactory.create().pk for _ in range(15)]
    rows = _genuine(rng, 250, videos, (3, 12))
    for k, member in enumerate(crew):
        for video in rng.sample(videos, 6):  # a history of their own
            at = NOW - timedelta(seconds=rng.uniform(60, 5 * 3600))
            rows.append((member, video.pk, at, f"crew-{k}", f"92.{k}.3.4"))
    rows += _together(rng, crew, targets, lambda k: (f"crew-{k}", f"92.{k}.3.4"))
    likes_insert(rows)
    video_counters_recount_many(video_ids=[v.pk for v in videos + targets])

    report = integrity_pass(window=timedelta(hours=6), now=NOW)

    assert report.opened == 1 and report.confirmed == 0
    case = Case.objects.get()
    assert case.status == Case.Status.OPEN and not case.auto_confirmed
    assert set(case.accounts.values_list("user_id", flat=True)) == set(crew)
    assert _counted_likes([t.pk for t in targets]) == 75


def test_the_case_page_draws_the_farm_s_likes_by_device_and_by_network() -> None:
    _, _, bots = _world()
    integrity_pass(window=timedelta(hours=6), now=NOW)
    case = Case.objects.get()
    staff = StaffUserFactory.create()
    client = Client()
    client.force_login(staff)

    page = client.get(f"/admin/integrity/case/{case.pk}/change/").content.decode()

    # two pictures (by device, by network), one dot per like of the 15 accounts in their spans
    assert page.count("aria-label=\"likes of the case's accounts") == 2
    assert page.count('class="like"') == 2 * 75
    # the case's videos drawn full; the farm's 3 shared devices and its one /24 have colours
    assert 'fill="none"' not in page
    assert "farm-0" in page and "farm-1" in page and "farm-2" in page
    assert "45.8.1.0/24" in page
    assert all(f"account {bot}<" in page for bot in bots)


def test_the_light_pass_confirms_a_one_shot_order_as_a_burst_case() -> None:
    # 20 accounts with no other like each like one video within ten minutes, each from a device
    # and an address no other like used; a viral video's crowd of regulars beside them is not
    rng = random.Random(9)
    creator = UserFactory.create()
    videos = [VideoFactory.create(creator=creator) for _ in range(30)]
    target = VideoFactory.create()
    rows = _genuine(rng, 100, videos, (2, 10), lambda n: f"81.{n}.1.2")
    order = [UserFactory.create().pk for _ in range(20)]
    start = NOW - timedelta(hours=2)
    for k, bot in enumerate(order):
        at = start + timedelta(seconds=rng.uniform(0, 600))
        rows.append((bot, target.pk, at, f"spoofed-{k}", f"{k + 11}.{k + 3}.7.9"))
    likes_insert(rows)
    video_counters_recount_many(video_ids=[target.pk])

    report = integrity_pass(window=timedelta(hours=6), now=NOW)

    assert report.opened == report.confirmed == 1
    case = Case.objects.get()
    assert set(case.accounts.values_list("user_id", flat=True)) == set(order)
    kinds = set(case.signals.values_list("kind", flat=True))
    assert kinds == {"fresh_burst", "spoofed_devices", "spoofed_addresses"}
    assert "burst on one video" in case.note
    assert video_counts([target.pk])[target.pk]["likes"] == 0
