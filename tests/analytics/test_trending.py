"""Trending hashtags: exact interactions/previous/growth/score for small worlds, the 3-distinct-
users rule, window edges at slice and hour granularity, incremental = rebuild."""

from datetime import UTC, datetime, timedelta

import pytest

from analytics.discovery import score_of, trending_document
from analytics.models import TagHour, TagSlice, VideoSlice
from analytics.parameters import iso_utc
from analytics.services.trending import hour_floor, trending_events_process, trending_rebuild
from engagement.models import InteractionKind, User
from engagement.services.counted import interactions_counted_set
from engagement.services.interactions import video_unlike
from tests.analytics.world import comment, follow, like, share, video
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Rows older than the retention (2 x 168 h + 1 h) are pruned, so the worlds sit in the last days.
# The window's end is not on an hour: hour - 3 h + 34:50.
HOUR_NOW = hour_floor(datetime.now(UTC))
END = HOUR_NOW - timedelta(hours=3) + timedelta(minutes=34, seconds=50)
START = END - timedelta(hours=24)
PREVIOUS_START = START - timedelta(hours=24)
SECOND = timedelta(seconds=1)
MICRO = timedelta(microseconds=1)


def users(count: int, prefix: str = "fan") -> list[User]:
    return User.objects.bulk_create([User(username=f"{prefix}{n}") for n in range(count)])


def results(hours: int = 24, limit: int = 20, end: datetime = END) -> list[dict]:
    trending_events_process()
    return trending_document(hours=hours, limit=limit, end=end)["results"]


def test_exact_counts_growth_and_score_over_every_kind_of_interaction() -> None:
    fans = users(6)
    creator = UserFactory.create()
    cats = video(creator, PREVIOUS_START - timedelta(days=1), ["cats"])
    also = video(creator, PREVIOUS_START - timedelta(days=1), ["cats", "pets"])
    # the previous window: 2 interactions on #cats (one also #pets)
    like(fans[0], cats, PREVIOUS_START)
    share(fans[1], also, START - MICRO)
    # this window: like, comment, share, follow gained, on both videos
    like(fans[2], also, START)
    comment(fans[3], cats, START + timedelta(hours=3))
    share(fans[4], cats, END - MICRO)
    follow(fans[5], creator, START + timedelta(hours=5), source_video=also)
    # not interactions or not counted or outside both windows
    like(fans[1], cats, END)  # at the end: next window
    like(fans[5], cats, PREVIOUS_START - MICRO, counted=False)
    comment(fans[0], cats, START, counted=False)
    follow(fans[0], creator, START, source_video=None)

    trending_events_process()
    document = trending_document(hours=24, limit=20, end=END)

    assert document == {
        "as_of": iso_utc(END),
        "window": {"hours": 24, "start": iso_utc(START), "end": iso_utc(END)},
        "results": [
            {
                "hashtag": "cats",
                "interactions": 4,
                "previous": 2,
                "growth": 1.0,
                "score": score_of(interactions=4, previous=2),
            }
        ],
    }
    # #pets: 2 interactions (fans 2 and 5) from 2 users only: not listed
    assert score_of(interactions=4, previous=2) == 2 / 12**0.5


def test_growth_is_null_without_previous_and_a_new_tag_outranks_a_small_riser() -> None:
    fans = users(40)
    creator = UserFactory.create()
    new = video(creator, PREVIOUS_START, ["brandnew"])
    small = video(creator, PREVIOUS_START, ["small"])
    for fan in fans[:30]:
        like(fan, new, END - timedelta(hours=1))
    share(fans[0], small, START - timedelta(hours=2))
    for fan in fans[:5]:
        like(fan, small, START + timedelta(hours=2))

    listed = results()

    assert listed == [
        {
            "hashtag": "brandnew",
            "interactions": 30,
            "previous": 0,
            "growth": None,
            "score": 30 / 10**0.5,
        },
        {"hashtag": "small", "interactions": 5, "previous": 1, "growth": 4.0, "score": 4 / 11**0.5},
    ]


def test_the_damping_ranks_1000_to_1500_above_1_to_5_and_falling_tags_last() -> None:
    # scores as the design document computes them
    assert round(score_of(interactions=5, previous=1), 2) == 1.21
    assert round(score_of(interactions=1500, previous=1000), 1) == 15.7
    assert round(score_of(interactions=40, previous=0), 1) == 12.6
    assert round(score_of(interactions=100, previous=200), 1) == -6.9


def test_three_distinct_users_in_the_window_are_needed() -> None:
    fans = users(3)
    creator = UserFactory.create()
    spam = video(creator, PREVIOUS_START, ["spam"])
    duo = video(creator, PREVIOUS_START, ["duo"])
    trio = video(creator, PREVIOUS_START, ["trio"])
    # one account, many interactions; two accounts; three accounts, the third only before
    for hours in range(1, 20):
        comment(fans[0], spam, START + timedelta(hours=hours))
        share(fans[0], duo, START + timedelta(hours=hours))
    share(fans[1], duo, START + timedelta(hours=2))
    like(fans[0], trio, START + timedelta(hours=1))
    like(fans[1], trio, START + timedelta(hours=1))
    share(fans[2], trio, START - SECOND)  # previous window: does not make three

    assert results() == []

    share(fans[2], trio, START)
    assert [row["hashtag"] for row in results()] == ["trio"]


@pytest.mark.parametrize("end_offset", [timedelta(0), timedelta(minutes=34, seconds=50)])
def test_window_edges_are_exact_at_hour_and_partial_hours(end_offset: timedelta) -> None:
    # given interactions on each side of the three edges, the end on and off an hour
    end = HOUR_NOW - timedelta(hours=3) + end_offset
    start, previous_start = end - timedelta(hours=3), end - timedelta(hours=6)
    fans = users(8)
    tagged = video(UserFactory.create(), previous_start - timedelta(days=1), ["edge"])
    share(fans[0], tagged, previous_start - MICRO)  # before both windows
    share(fans[1], tagged, previous_start)  # previous
    share(fans[2], tagged, start - MICRO)  # previous
    share(fans[3], tagged, start)  # current
    share(fans[4], tagged, start + timedelta(minutes=30))  # current
    share(fans[5], tagged, end - SECOND)  # current
    share(fans[6], tagged, end - MICRO)  # current
    share(fans[7], tagged, end)  # after

    assert results(hours=3, end=end) == [
        {
            "hashtag": "edge",
            "interactions": 4,
            "previous": 2,
            "growth": 1.0,
            "score": score_of(interactions=4, previous=2),
        }
    ]


def test_limit_orders_by_score_then_interactions_then_name() -> None:
    fans = users(4)
    creator = UserFactory.create()
    for name in ["b-tag", "a-tag", "c-tag"]:
        tagged = video(creator, PREVIOUS_START, [name])
        for fan in fans[: 4 if name == "c-tag" else 3]:
            like(fan, tagged, START + timedelta(hours=1))

    assert [row["hashtag"] for row in results(limit=2)] == ["c-tag", "a-tag"]


def test_flips_and_removals_reach_the_buckets_and_rebuild_equals_incremental() -> None:
    fans = users(4)
    creator = UserFactory.create()
    tagged = video(creator, PREVIOUS_START, ["flip"])
    likes = [like(fan, tagged, START + timedelta(hours=1)) for fan in fans]
    assert results()[0]["interactions"] == 4

    interactions_counted_set(kind=InteractionKind.LIKE, ids=[likes[0].pk], counted=False)
    assert results()[0]["interactions"] == 3
    video_unlike(user=fans[1], video_id=tagged.pk)
    assert results() == []  # 2 users left
    interactions_counted_set(kind=InteractionKind.LIKE, ids=[likes[0].pk], counted=True)
    assert results()[0]["interactions"] == 3

    def buckets() -> dict:
        return {
            model.__name__: sorted(
                (tuple(row[:2]), row[2], row[3])
                for row in model.objects.values_list(
                    "video_id" if model is VideoSlice else "hashtag_id",
                    "slice" if model is not TagHour else "hour",
                    "interactions",
                    "users",
                )
            )
            for model in (VideoSlice, TagSlice, TagHour)
        }

    incremental = buckets()
    trending_rebuild()
    assert buckets() == incremental
    hour = hour_floor(START + timedelta(hours=1))
    assert incremental["TagHour"] == [
        ((tagged.hashtags.get().pk, hour), 3, [fans[0].pk, fans[2].pk, fans[3].pk])
    ]
