"""`seed_demo`'s history (analytics/demo.py): seeded once, and every figure of the creator centre,
the hot list and trending has something real to show (issue 9 §5)."""

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, F, Q
from django.utils import timezone

from analytics.demo import CREATORS, PLAN, RISING, VIEWERS
from analytics.raw import creator_figures_raw, video_figures_raw
from engagement.models import Comment, CommentLike, Follow, Like, Removal, User, Video
from engagement.services.counters import video_counts
from polls.models import Answer, Sticker, Vote
from tests.analytics.world import cells
from tests.conftest import database_state

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def _state() -> dict[str, Any]:
    return {
        **database_state(),
        "stickers": Sticker.objects.count(),
        "votes": Vote.objects.count(),
        "answers": Answer.objects.count(),
    }


def _history_videos() -> list[Video]:
    titles = [title for videos in PLAN.values() for title, *_ in videos]
    return list(Video.objects.filter(title__in=titles))


def test_the_history_is_seeded_once_and_a_second_seed_adds_nothing() -> None:
    output = _seed()
    first = _state()

    again = _seed()

    assert "Demo history: 40 videos" in output
    assert "Demo history: already there, nothing added." in again
    assert _state() == first
    videos = _history_videos()
    assert len(videos) == 40
    assert User.objects.filter(username__in=VIEWERS).count() == len(VIEWERS) == 44
    assert User.objects.filter(username__in=[name for name, *_ in CREATORS]).count() == 5
    now = timezone.now()
    days_ago = {(now - video.created_at) // timedelta(days=1) for video in videos}
    assert set(range(7)) <= days_ago  # a video published on each of the last 7 days
    assert max(days_ago) >= 28  # and some in the previous 28-day window
    assert all(video.created_at < now for video in videos)
    # removals exist: an unlike and an unfollow, through the services
    assert set(Removal.objects.values_list("kind", flat=True)) == {"like", "follow"}
    # follows with a source video and without
    assert Follow.objects.filter(source_video__isnull=True).exists()
    assert Follow.objects.filter(source_video__in=videos).exists()
    # stickers: videos with 2+ live kinds, with one, with only a canceled one
    live = Sticker.objects.exclude(state__in=["canceled", "moderated"])
    kinds = dict(
        Video.objects.filter(pk__in=[video.pk for video in videos])
        .annotate(kinds=Count("stickers__kind", distinct=True, filter=Q(stickers__in=live)))
        .values_list("title", "kinds")
    )
    assert sum(1 for count in kinds.values() if count >= 2) >= 5
    assert sum(1 for count in kinds.values() if count == 1) >= 3
    assert Sticker.objects.get(video__title="Knife skills in 60 seconds").state == "canceled"
    assert kinds["Knife skills in 60 seconds"] == 0
    assert Vote.objects.exists() and Answer.objects.exists() and CommentLike.objects.exists()


def test_every_figure_of_a_demo_creator_shows_something_real() -> None:
    _seed()
    alice = User.objects.get(username="alice")

    figures = creator_figures_raw(creator_id=alice.pk, days=28, tz="UTC", now=timezone.now())

    assert all(count > 0 for count in figures["totals"].values()), figures["totals"]
    for name in (
        "interaction_rate",
        "interaction_growth_rate",
        "first_hour_velocity",
        "completion_rate",
        "replay_rate",
        "effective_comment_share",
        "quick_like_share",
    ):
        assert figures[name] is not None and figures[name] > 0, name
    assert figures["effective_comment_share"] < 1  # emoji-only and repeated comments
    assert 0 < figures["quick_like_share"] < 1
    assert 0 < figures["completion_rate"] < 1 and 0 < figures["replay_rate"] < 1
    grid = cells(figures["fan_activity"]["grid"])
    assert len({weekday for weekday, _ in grid}) >= 3
    assert len({hour for _, hour in grid}) >= 12
    assert len(figures["interest_preferences"]) >= 3
    assert all(row["plays"] and row["likes"] for row in figures["interest_preferences"][:3])
    tools = figures["tool_effect"]
    assert tools["with_tools"]["videos"] > 0 and tools["without_tools"]["videos"] > 0
    assert tools["with_tools"]["first_hour_velocity"] is not None
    assert tools["without_tools"]["first_hour_velocity"] is not None
    assert tools["lift"] is not None and tools["lift"] > 0


def test_every_demo_creator_has_rates_for_7_and_28_days() -> None:
    _seed()
    now = timezone.now()

    for name, *_ in CREATORS:
        creator = User.objects.get(username=name)
        for days in (7, 28):
            figures = creator_figures_raw(creator_id=creator.pk, days=days, tz="UTC", now=now)
            for figure in (
                "interaction_rate",
                "interaction_growth_rate",
                "first_hour_velocity",
                "completion_rate",
                "replay_rate",
                "effective_comment_share",
                "quick_like_share",
            ):
                assert figures[figure] is not None, (name, days, figure)


def test_a_demo_video_with_stickers_has_first_hour_and_participants() -> None:
    _seed()
    video = Video.objects.get(title="Night market dumplings")

    figures = video_figures_raw(video_id=video.pk, days=7, tz="UTC", now=timezone.now())

    assert figures["first_hour"]["plays"] > 0 and figures["first_hour"]["interactions"] > 0
    assert {sticker["kind"] for sticker in figures["stickers"]} == {"poll", "comment_pick"}
    assert all(sticker["participants"] > 0 for sticker in figures["stickers"])


def test_video_counters_and_comment_like_counts_equal_a_recount_of_the_rows() -> None:
    _seed()
    videos = Video.objects.all()

    counts = video_counts([video.pk for video in videos])

    recount = {
        video.pk: {
            "likes": video.likes.filter(counted=True).count(),
            "comments": video.comments.filter(counted=True).count(),
            "shares": video.shares.filter(counted=True).count(),
            "plays": video.plays.filter(counted=True).count(),
        }
        for video in videos
    }
    assert counts == recount
    assert sum(row["plays"] for row in counts.values()) > 900
    mismatched = Comment.objects.annotate(
        rows=Count("likes", filter=Q(likes__counted=True))
    ).exclude(like_count=F("rows"))
    assert not mismatched.exists()


TAG_INTERACTIONS = """
WITH interactions AS (
    SELECT video_id, user_id, created_at FROM engagement_like WHERE counted
    UNION ALL SELECT video_id, user_id, created_at FROM engagement_comment WHERE counted
    UNION ALL SELECT video_id, user_id, created_at FROM engagement_share WHERE counted
    UNION ALL SELECT f.source_video_id, f.user_id, f.created_at FROM engagement_follow f
        JOIN engagement_video v ON v.id = f.source_video_id AND v.creator_id = f.creator_id
        WHERE f.counted
)
SELECT h.name,
    count(*) FILTER (WHERE i.created_at >= %(now)s - interval '24 hours'),
    count(*) FILTER (WHERE i.created_at >= %(now)s - interval '48 hours'
                       AND i.created_at < %(now)s - interval '24 hours'),
    count(DISTINCT i.user_id) FILTER (WHERE i.created_at >= %(now)s - interval '24 hours')
FROM interactions i
JOIN engagement_videohashtag vh ON vh.video_id = i.video_id
JOIN engagement_hashtag h ON h.id = vh.hashtag_id
WHERE i.created_at < %(now)s
GROUP BY h.name
"""


def test_two_hashtags_rise_in_the_last_24_hours_with_3_distinct_users() -> None:
    _seed()

    with connection.cursor() as cursor:
        cursor.execute(TAG_INTERACTIONS, {"now": timezone.now()})
        tags = {name: (current, previous, users) for name, current, previous, users in cursor}

    rising = {
        name
        for name, (current, previous, users) in tags.items()
        if users >= 3 and previous > 0 and current > previous
    }
    assert set(RISING) <= rising, tags
    assert len(tags) >= 12  # a dozen hashtags with interactions


def test_the_hot_list_has_deep_and_first_hour_likes() -> None:
    _seed()

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE EXISTS (
                       SELECT 1 FROM engagement_comment c
                       WHERE c.video_id = l.video_id AND c.user_id = l.user_id AND c.counted)),
                   count(*) FILTER (WHERE l.created_at < v.created_at + interval '1 hour'),
                   count(DISTINCT l.video_id)
            FROM engagement_like l JOIN engagement_video v ON v.id = l.video_id
            WHERE l.counted
            """
        )
        deep, first_hour, videos = cursor.fetchone()

    assert deep > 10 and first_hour > 10 and videos >= 40
    assert Like.objects.filter(counted=True).count() > 400
