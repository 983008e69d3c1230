"""engagement services: sharded counters, recounts, counted rows (SPEC §2.4)."""

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from core.client import ClientInfo
from core.exceptions import InvalidInput, NotFound
from engagement.models import CommentLike, Follow, Like, Removal, VideoCounter
from engagement.services import interactions
from engagement.services.counters import (
    COUNTER_SHARDS,
    video_counter_add,
    video_counters_recount,
    video_counts,
)
from engagement.services.interactions import comment_likes_recount
from engagement.services.videos import hashtags_normalize
from tests.factories import (
    CommentFactory,
    CommentLikeFactory,
    FollowFactory,
    LikeFactory,
    PlayFactory,
    ShareFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db

CLIENT = ClientInfo(ip="203.0.113.7", device_id="device-1")
ZERO = {"likes": 0, "comments": 0, "shares": 0, "plays": 0}


# --- sharded counters ---------------------------------------------------------------------------
def test_counters_are_exact_across_shards() -> None:
    # given 60 likes (they land on random shards) and some of every other interaction
    video = VideoFactory.create()
    for liker in UserFactory.create_batch(60):
        interactions.video_like(user=liker, video_id=video.pk, client=CLIENT)
    commenter = UserFactory.create()
    for n in range(7):
        interactions.comment_create(user=commenter, video_id=video.pk, text=f"c{n}", client=CLIENT)
    for _ in range(3):
        interactions.share_create(user=commenter, video_id=video.pk, channel="", client=CLIENT)
    for _ in range(5):
        interactions.play_create(
            user=commenter, video_id=video.pk, watched_ms=1, completed=False, client=CLIENT
        )

    counts = video_counts([video.pk])

    assert counts == {video.pk: {"likes": 60, "comments": 7, "shares": 3, "plays": 5}}
    shards = list(VideoCounter.objects.filter(video=video).values_list("shard", flat=True))
    assert 1 < len(shards) <= COUNTER_SHARDS
    assert all(0 <= shard < COUNTER_SHARDS for shard in shards)


def test_counts_sum_positive_and_negative_shards() -> None:
    video = VideoFactory.create()
    VideoCounter.objects.create(video=video, shard=0, likes=5, plays=2)
    VideoCounter.objects.create(video=video, shard=3, likes=-2, comments=1)
    VideoCounter.objects.create(video=video, shard=7, shares=4)

    assert video_counts([video.pk]) == {
        video.pk: {"likes": 3, "comments": 1, "shares": 4, "plays": 2}
    }


def test_counts_of_several_videos_and_of_videos_without_counters() -> None:
    liked, untouched = VideoFactory.create(), VideoFactory.create()
    video_counter_add(video_id=liked.pk, counter="likes", delta=2)

    assert video_counts([liked.pk, untouched.pk]) == {
        liked.pk: {**ZERO, "likes": 2},
        untouched.pk: ZERO,
    }
    assert video_counts([]) == {}


def test_counter_add_refuses_an_unknown_counter() -> None:
    video = VideoFactory.create()

    with pytest.raises(ValueError, match="unknown counter 'views'"):
        video_counter_add(video_id=video.pk, counter="views", delta=1)  # type: ignore[arg-type]

    assert VideoCounter.objects.count() == 0


# --- recount ------------------------------------------------------------------------------------
def test_recount_rebuilds_counters_from_counted_rows_only() -> None:
    # given counted and uncounted rows of every kind, and counters that drifted
    video = VideoFactory.create()
    LikeFactory.create_batch(3, video=video)
    LikeFactory.create_batch(2, video=video, counted=False)
    CommentFactory.create_batch(2, video=video)
    CommentFactory.create(video=video, counted=False)
    ShareFactory.create(video=video)
    ShareFactory.create(video=video, counted=False)
    PlayFactory.create_batch(4, video=video)
    PlayFactory.create(video=video, counted=False)
    LikeFactory.create(counted=True)  # another video's like
    VideoCounter.objects.create(video=video, shard=2, likes=100, comments=-3)
    VideoCounter.objects.create(video=video, shard=6, plays=9)

    result = video_counters_recount(video_id=video.pk)

    exact = {"likes": 3, "comments": 2, "shares": 1, "plays": 4}
    assert result == exact
    assert video_counts([video.pk]) == {video.pk: exact}
    assert list(VideoCounter.objects.filter(video=video).values_list("shard", flat=True)) == [0]


def test_recount_of_a_missing_video_is_none() -> None:
    video = VideoFactory.create()
    video_id = video.pk
    video.delete()

    assert video_counters_recount(video_id=video_id) is None
    assert VideoCounter.objects.count() == 0


def test_recount_after_an_integrity_decision_stops_counting_the_likes() -> None:
    video = VideoFactory.create()
    bots, people = UserFactory.create_batch(3), UserFactory.create_batch(2)
    for liker in [*bots, *people]:
        interactions.video_like(user=liker, video_id=video.pk, client=CLIENT)
    assert video_counts([video.pk])[video.pk]["likes"] == 5

    # an integrity decision flips `counted`; nothing is deleted
    Like.objects.filter(user__in=bots).update(counted=False)
    video_counters_recount(video_id=video.pk)

    assert video_counts([video.pk])[video.pk]["likes"] == 2
    assert Like.objects.filter(video=video).count() == 5


def test_comment_likes_recount_counts_only_counted_rows() -> None:
    comment = CommentFactory.create(like_count=42)
    CommentLikeFactory.create_batch(3, comment=comment)
    CommentLikeFactory.create(comment=comment, counted=False)

    assert comment_likes_recount(comment_id=comment.pk) == 3

    comment.refresh_from_db()
    assert comment.like_count == 3


def test_comment_likes_recount_of_a_missing_comment_is_none() -> None:
    comment = CommentFactory.create()
    comment_id = comment.pk
    comment.delete()

    assert comment_likes_recount(comment_id=comment_id) is None


# --- likes and unlikes --------------------------------------------------------------------------
def test_like_stores_who_and_from_where() -> None:
    video, user = VideoFactory.create(), UserFactory.create()

    result = interactions.video_like(user=user, video_id=video.pk, client=CLIENT)

    assert result.created is True
    like = Like.objects.get()
    assert (like.user_id, like.video_id) == (user.pk, video.pk)
    assert (like.ip, like.device_id, like.counted) == ("203.0.113.7", "device-1", True)


def test_a_second_like_creates_nothing() -> None:
    video, user = VideoFactory.create(), UserFactory.create()
    interactions.video_like(user=user, video_id=video.pk, client=CLIENT)

    result = interactions.video_like(user=user, video_id=video.pk, client=CLIENT)

    assert result.created is False
    assert Like.objects.count() == 1
    assert video_counts([video.pk])[video.pk]["likes"] == 1


def test_liking_when_an_uncounted_like_exists_does_not_count() -> None:
    video, user = VideoFactory.create(), UserFactory.create()
    LikeFactory.create(user=user, video=video, counted=False)

    result = interactions.video_like(user=user, video_id=video.pk, client=CLIENT)

    assert result.created is False
    assert Like.objects.get().counted is False
    assert video_counts([video.pk])[video.pk]["likes"] == 0


def test_unlike_of_an_uncounted_like_does_not_decrement() -> None:
    video, user = VideoFactory.create(), UserFactory.create()
    interactions.video_like(user=UserFactory.create(), video_id=video.pk, client=CLIENT)
    LikeFactory.create(user=user, video=video, counted=False)

    interactions.video_unlike(user=user, video_id=video.pk)

    assert video_counts([video.pk])[video.pk]["likes"] == 1
    assert not Like.objects.filter(user=user).exists()


def test_unlike_of_a_counted_like_decrements() -> None:
    video, user = VideoFactory.create(), UserFactory.create()
    interactions.video_like(user=user, video_id=video.pk, client=CLIENT)

    interactions.video_unlike(user=user, video_id=video.pk)
    interactions.video_unlike(user=user, video_id=video.pk)

    assert video_counts([video.pk])[video.pk]["likes"] == 0
    assert Like.objects.count() == 0


def test_comment_unlike_of_an_uncounted_like_does_not_decrement() -> None:
    comment, user = CommentFactory.create(), UserFactory.create()
    interactions.comment_like(user=UserFactory.create(), comment_id=comment.pk, client=CLIENT)
    CommentLikeFactory.create(user=user, comment=comment, counted=False)

    interactions.comment_unlike(user=user, comment_id=comment.pk)

    comment.refresh_from_db()
    assert comment.like_count == 1
    assert CommentLike.objects.filter(comment=comment).count() == 1


@pytest.mark.parametrize(
    "write",
    [
        lambda user, video_id: interactions.video_like(user=user, video_id=video_id, client=CLIENT),
        lambda user, video_id: interactions.video_unlike(user=user, video_id=video_id),
        lambda user, video_id: interactions.comment_create(
            user=user, video_id=video_id, text="x", client=CLIENT
        ),
        lambda user, video_id: interactions.share_create(
            user=user, video_id=video_id, channel="", client=CLIENT
        ),
        lambda user, video_id: interactions.play_create(
            user=user, video_id=video_id, watched_ms=1, completed=True, client=CLIENT
        ),
    ],
)
def test_writes_on_a_missing_video_raise_not_found_and_write_nothing(write: object) -> None:
    video = VideoFactory.create()
    video_id = video.pk
    video.delete()

    with pytest.raises(NotFound) as error:
        write(UserFactory.create(), video_id)  # type: ignore[operator]

    assert (error.value.code, error.value.detail) == ("not_found", "No video with this id.")
    assert VideoCounter.objects.count() == 0


# --- plays --------------------------------------------------------------------------------------
def test_replay_is_derived_from_earlier_plays_of_the_same_user_and_video() -> None:
    video, other_video = VideoFactory.create(), VideoFactory.create()
    user, other_user = UserFactory.create(), UserFactory.create()
    PlayFactory.create(user=user, video=other_video)
    PlayFactory.create(user=other_user, video=video)

    first = interactions.play_create(
        user=user, video_id=video.pk, watched_ms=5, completed=False, client=CLIENT
    )
    second = interactions.play_create(
        user=user, video_id=video.pk, watched_ms=30_000, completed=True, client=CLIENT
    )

    assert (first.replay, second.replay) == (False, True)
    assert (second.play.watched_ms, second.play.completed) == (30_000, True)


# --- follows ------------------------------------------------------------------------------------
def test_follow_refusals() -> None:
    user, creator = UserFactory.create(), UserFactory.create()
    foreign_video = VideoFactory.create()

    with pytest.raises(InvalidInput) as self_follow:
        interactions.creator_follow(
            user=user, creator_id=user.pk, source_video_id=None, client=CLIENT
        )
    with pytest.raises(InvalidInput) as foreign:
        interactions.creator_follow(
            user=user, creator_id=creator.pk, source_video_id=foreign_video.pk, client=CLIENT
        )
    with pytest.raises(NotFound):
        interactions.creator_follow(
            user=user, creator_id=creator.pk + 1000, source_video_id=None, client=CLIENT
        )

    assert self_follow.value.code == "cannot_follow_self"
    assert foreign.value.errors == {"video_id": ["Not a video of this creator."]}
    assert Follow.objects.count() == 0


def test_the_database_refuses_a_self_follow_and_a_duplicate_follow() -> None:
    # the invariants live in the database, not only in the service
    user, creator = UserFactory.create(), UserFactory.create()
    FollowFactory.create(user=user, creator=creator)

    with pytest.raises(IntegrityError), transaction.atomic():
        FollowFactory.create(user=user, creator=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        FollowFactory.create(user=user, creator=creator)

    assert Follow.objects.count() == 1


def test_the_database_refuses_a_duplicate_like() -> None:
    like = LikeFactory.create()

    with pytest.raises(IntegrityError), transaction.atomic():
        LikeFactory.create(user=like.user, video=like.video)

    assert Like.objects.count() == 1


# --- hashtags -----------------------------------------------------------------------------------
def test_hashtags_normalize() -> None:
    assert hashtags_normalize(["#Cooking", "cooking", " ramen ", "#", "", "RAMEN", "b_2"]) == [
        "cooking",
        "ramen",
        "b_2",
    ]


# --- removals (unlike, comment unlike, unfollow leave a record) -----------------------------------
def _removals() -> list[Any]:
    return list(
        Removal.objects.order_by("pk").values(
            "kind", "row_id", "user_id", "target_id", "video_id", "counted",
            "interaction_created_at",
        )
    )  # fmt: skip


def test_an_unlike_records_exactly_the_removed_like(
    django_assert_num_queries: Callable[..., Any],
) -> None:
    video, user = VideoFactory.create(), UserFactory.create()
    interactions.video_like(user=user, video_id=video.pk, client=CLIENT)
    like = Like.objects.get()
    before = timezone.now()

    # the unlike is still three statements: video lock, delete-and-record, counter
    with django_assert_num_queries(5):  # (and the savepoint of its atomic block, in a test)
        interactions.video_unlike(user=user, video_id=video.pk)
    interactions.video_unlike(user=user, video_id=video.pk)  # nothing left to remove

    assert _removals() == [
        {
            "kind": "like",
            "row_id": like.pk,
            "user_id": user.pk,
            "target_id": video.pk,
            "video_id": video.pk,
            "counted": True,
            "interaction_created_at": like.created_at,
        }
    ]
    assert before <= Removal.objects.get().created_at <= timezone.now()
    assert video_counts([video.pk])[video.pk]["likes"] == 0


def test_an_unlike_of_an_uncounted_like_records_it_uncounted() -> None:
    video, user = VideoFactory.create(), UserFactory.create()
    like = LikeFactory.create(user=user, video=video, counted=False)

    interactions.video_unlike(user=user, video_id=video.pk)

    assert [(r["row_id"], r["counted"]) for r in _removals()] == [(like.pk, False)]


def test_a_comment_unlike_records_the_comment_and_its_video() -> None:
    comment, user = CommentFactory.create(), UserFactory.create()
    interactions.comment_like(user=user, comment_id=comment.pk, client=CLIENT)
    comment_like = CommentLike.objects.get()

    interactions.comment_unlike(user=user, comment_id=comment.pk)
    interactions.comment_unlike(user=user, comment_id=comment.pk)

    assert _removals() == [
        {
            "kind": "comment_like",
            "row_id": comment_like.pk,
            "user_id": user.pk,
            "target_id": comment.pk,
            "video_id": comment.video_id,
            "counted": True,
            "interaction_created_at": comment_like.created_at,
        }
    ]
    comment.refresh_from_db()
    assert comment.like_count == 0


def test_an_unfollow_records_the_creator_and_the_source_video() -> None:
    user, creator = UserFactory.create(), UserFactory.create()
    video = VideoFactory.create(creator=creator)
    interactions.creator_follow(
        user=user, creator_id=creator.pk, source_video_id=video.pk, client=CLIENT
    )
    follow = Follow.objects.get()

    interactions.creator_unfollow(user=user, creator_id=creator.pk)
    interactions.creator_unfollow(user=user, creator_id=creator.pk)

    assert _removals() == [
        {
            "kind": "follow",
            "row_id": follow.pk,
            "user_id": user.pk,
            "target_id": creator.pk,
            "video_id": video.pk,
            "counted": True,
            "interaction_created_at": follow.created_at,
        }
    ]
    assert Follow.objects.count() == 0


def test_the_removal_records_are_append_only_and_take_only_removable_kinds() -> None:
    video, user = VideoFactory.create(), UserFactory.create()
    interactions.video_like(user=user, video_id=video.pk, client=CLIENT)
    interactions.video_unlike(user=user, video_id=video.pk)
    removal = Removal.objects.get()

    with (
        pytest.raises(DatabaseError, match="engagement_removal is append-only"),
        transaction.atomic(),
    ):
        Removal.objects.update(counted=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        Removal.objects.create(
            kind="play", row_id=1, user_id=user.pk, target_id=video.pk, counted=True,
            interaction_created_at=timezone.now(), created_at=timezone.now(),
        )  # fmt: skip

    assert list(Removal.objects.values_list("pk", "counted")) == [(removal.pk, True)]
