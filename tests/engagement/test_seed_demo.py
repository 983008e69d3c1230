"""`manage.py seed_demo` loads the demo data and is idempotent."""

from io import StringIO

import pytest
from django.core.management import call_command

from engagement.demo import CREATORS, DEMO_PASSWORD, STAFF_USERNAME, VIEWERS
from engagement.models import Comment, Follow, Like, Report, User, Video
from engagement.services.counters import video_counts
from tests.conftest import database_state

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_creates_the_demo_data() -> None:
    output = _seed()

    assert output.splitlines()[-1] == "Demo data ready."
    staff = User.objects.get(username=STAFF_USERNAME)
    assert (staff.is_staff, staff.is_superuser) == (True, True)
    creators = [username for username, _, _ in CREATORS]
    # (analytics' demo history adds more creators, viewers and videos: tests/analytics)
    usernames = set(User.objects.exclude(pk=staff.pk).values_list("username", flat=True))
    assert set(creators + VIEWERS) <= usernames
    assert all(user.check_password(DEMO_PASSWORD) for user in User.objects.exclude(pk=staff.pk))
    titles = [title for _, _, uploads in CREATORS for title, _, _ in uploads]
    demo_videos = Video.objects.filter(title__in=titles, creator__username__in=creators)
    assert demo_videos.count() == 3
    assert Like.objects.filter(video__in=demo_videos).count() == 3 * len(VIEWERS)
    assert Follow.objects.filter(source_video__in=demo_videos).count() == 3 * len(VIEWERS)
    assert Comment.objects.filter(video__in=demo_videos).count() == 3 * 3
    assert sorted(Report.objects.values_list("target_type", "status")) == [
        ("comment", "open"),
        ("video", "open"),
    ]
    for video in demo_videos:
        assert video_counts([video.pk])[video.pk] == {
            "likes": len(VIEWERS),
            "comments": 3,
            "shares": 0,
            "plays": 0,
        }
    assert list(
        Video.objects.get(title="Five-minute ramen")
        .hashtags.order_by("videohashtag__position")
        .values_list("name", flat=True)
    ) == ["cooking", "ramen"]


def test_seed_demo_twice_leaves_the_same_data() -> None:
    _seed()
    first = database_state()
    counts = video_counts(list(Video.objects.values_list("pk", flat=True)))

    _seed()

    assert database_state() == first
    assert video_counts(list(Video.objects.values_list("pk", flat=True))) == counts


def test_seed_demo_keeps_an_existing_staff_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "first-password-1")
    _seed()
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "second-password-2")

    _seed()

    assert User.objects.get(username=STAFF_USERNAME).check_password("first-password-1")
