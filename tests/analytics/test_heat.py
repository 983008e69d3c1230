"""Heat (docs/discovery.md "Heat"): exact values for hand-computed cases, the consumer's
incremental passes (new likes and comments, flips, unlikes) and the one-statement rebuild."""

from datetime import UTC, datetime, timedelta

import pytest

from analytics.models import VideoHeat
from analytics.services.heat import (
    SOURCES,
    heat_as_of,
    heat_events_process,
    heat_of,
    heat_rebuild,
    watermark_name,
)
from core.eventlog import watermark_position
from engagement.models import InteractionKind, User, Video
from engagement.services.counted import interactions_counted_set
from engagement.services.interactions import video_unlike
from tests.analytics.world import comment, like, video
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 1, tzinfo=UTC)


def users(count: int, prefix: str = "fan") -> list[User]:
    return User.objects.bulk_create([User(username=f"{prefix}{n}") for n in range(count)])


def heat_row(made: Video) -> tuple[int, int, int, int, float]:
    row = VideoHeat.objects.get(video=made)
    return (row.likes, row.deep_likes, row.first_hour_likes, row.points, row.heat)


def test_the_worked_example_of_the_design_document() -> None:
    # given A at 10:00 with 100 plain likes (after its first hour), B at 20:00 with 12 likes
    # from users who commented on it
    fans = users(160)
    a = video(UserFactory.create(), DAY.replace(hour=10))
    b = video(UserFactory.create(), DAY.replace(hour=20))
    for fan in fans[:100]:
        like(fan, a, DAY.replace(hour=12))
    for fan in fans[:12]:
        comment(fan, b, DAY.replace(hour=21))
        like(fan, b, DAY.replace(hour=22))

    # when the consumer passes
    heat_events_process()

    # then the counts and heats are the formula's, and B ranks above A (by 0.18)
    assert heat_row(a) == (100, 0, 0, 100, heat_of(points=100, published_at=a.created_at))
    assert heat_row(b) == (12, 12, 0, 24, heat_of(points=24, published_at=b.created_at))
    # log10(100) + (59 days + 10 h) / 45,000 s
    assert heat_row(a)[4] == 2 + (59 * 86_400 + 10 * 3600) / 45_000 == 116.08
    assert round(heat_row(a)[4] - heat_row(b)[4], 3) == -0.18

    # when A reaches 150, then 160 likes
    for fan in fans[100:150]:
        like(fan, a, DAY.replace(hour=12))
    heat_events_process()
    assert round(heat_row(a)[4] - heat_row(b)[4], 3) == -0.004
    for fan in fans[150:160]:
        like(fan, a, DAY.replace(hour=12))
    heat_events_process()

    # then A leads by 0.024
    assert round(heat_row(a)[4] - heat_row(b)[4], 3) == 0.024


def test_first_hour_is_half_open_and_depth_needs_a_counted_comment_by_the_liker() -> None:
    fans = users(5)
    published = DAY.replace(hour=8)
    v = video(UserFactory.create(), published)
    like(fans[0], v, published)  # first hour, at 0:00
    like(fans[1], v, published + timedelta(minutes=59, seconds=59, microseconds=999_999))
    like(fans[2], v, published + timedelta(hours=1))  # not in the first hour
    comment(fans[2], v, published + timedelta(hours=2))  # deep
    comment(fans[3], v, published + timedelta(hours=2))  # comments alone add nothing
    comment(fans[1], v, published + timedelta(hours=2), counted=False)  # uncounted: not deep
    like(fans[4], v, published, counted=False)  # uncounted: nothing

    heat_events_process()

    # 3 likes + 1 deep + 2 in the first hour = 6 points
    assert heat_row(v) == (3, 1, 2, 6, heat_of(points=6, published_at=published))


def test_heat_of_a_video_without_counted_likes_is_its_time_alone() -> None:
    fan = users(1)[0]
    v = video(UserFactory.create(), DAY)
    like(fan, v, DAY, counted=False)
    heat_events_process()
    assert heat_row(v) == (
        0,
        0,
        0,
        0,
        (DAY - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds() / 45_000,
    )


def test_a_flip_and_an_unlike_move_heat_after_the_pass_and_a_reversal_restores_it() -> None:
    fans = users(3)
    v = video(UserFactory.create(), DAY)
    likes = [like(fan, v, DAY + timedelta(hours=3)) for fan in fans]
    noted = comment(fans[0], v, DAY + timedelta(hours=4))
    heat_events_process()
    assert heat_row(v)[:4] == (3, 1, 0, 4)

    # when integrity uncounts two likes: nothing moves until the consumer's pass
    interactions_counted_set(
        kind=InteractionKind.LIKE, ids=[likes[0].pk, likes[1].pk], counted=False
    )
    assert heat_row(v)[:4] == (3, 1, 0, 4)
    heat_events_process()
    assert heat_row(v) == (1, 0, 0, 1, heat_of(points=1, published_at=DAY))

    # when the liker's comment is uncounted, then counted again with the likes
    interactions_counted_set(
        kind=InteractionKind.LIKE, ids=[likes[0].pk, likes[1].pk], counted=True
    )
    interactions_counted_set(kind=InteractionKind.COMMENT, ids=[noted.pk], counted=False)
    heat_events_process()
    assert heat_row(v)[:4] == (3, 0, 0, 3)
    interactions_counted_set(kind=InteractionKind.COMMENT, ids=[noted.pk], counted=True)
    heat_events_process()
    assert heat_row(v) == (3, 1, 0, 4, heat_of(points=4, published_at=DAY))

    # when the commenter unlikes
    video_unlike(user=fans[0], video_id=v.pk)
    heat_events_process()
    assert heat_row(v) == (2, 0, 0, 2, heat_of(points=2, published_at=DAY))


def test_the_consumer_touches_only_the_videos_named_by_new_rows_and_keeps_watermarks() -> None:
    fans = users(2)
    quiet = video(UserFactory.create(), DAY)
    busy = video(UserFactory.create(), DAY)
    like(fans[0], quiet, DAY + timedelta(hours=2))
    heat_events_process()
    before = VideoHeat.objects.get(video=quiet).updated_at

    like(fans[1], busy, DAY + timedelta(hours=2))
    report = heat_events_process()

    assert report.videos == 1
    assert VideoHeat.objects.get(video=quiet).updated_at == before
    assert heat_row(busy)[:4] == (1, 0, 0, 1)
    # rows older than the safety lag moved the watermarks; the as_of moved to a recent time
    assert watermark_position(watermark_name("likes")) > 0
    assert heat_as_of() > datetime.now(UTC) - timedelta(seconds=60)
    assert {source.name for source in SOURCES} == {"likes", "comments", "counted_flips", "removals"}


def test_rebuild_equals_the_incremental_passes() -> None:
    fans = users(12)
    videos = [video(UserFactory.create(), DAY + timedelta(hours=hour)) for hour in range(4)]
    made = []
    for index, fan in enumerate(fans):
        for offset, target in enumerate(videos[: 1 + index % 4]):
            made.append(
                like(fan, target, target.created_at + timedelta(minutes=20 * (index + offset)))
            )
        if index % 3 == 0:
            comment(fan, videos[0], DAY + timedelta(hours=5))
    # twice on one video (one deep like), and an uncounted comment (not deep)
    comment(fans[3], videos[0], DAY + timedelta(hours=6))
    comment(fans[2], videos[0], DAY + timedelta(hours=6), counted=False)
    interactions_counted_set(kind=InteractionKind.LIKE, ids=[made[1].pk, made[5].pk], counted=False)
    video_unlike(user=fans[4], video_id=videos[0].pk)
    heat_events_process()
    incremental = {row.video_id: heat_row(row.video) for row in VideoHeat.objects.all()}

    VideoHeat.objects.all().delete()
    written = heat_rebuild()

    assert written == Video.objects.count()
    assert {row.video_id: heat_row(row.video) for row in VideoHeat.objects.all()} == incremental
    assert VideoHeat.objects.get(video=videos[0]).deep_likes == 4  # fans 0, 3, 6 and 9
