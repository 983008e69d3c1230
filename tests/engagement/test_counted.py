"""Flipping `counted` on sets of interaction rows (SPEC §2.4, §5): exact recounts and records."""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from core.client import ClientInfo
from engagement.models import (
    Comment,
    CommentLike,
    CountedFlip,
    Follow,
    InteractionKind,
    Like,
    Play,
    Share,
    User,
    Video,
)
from engagement.services import interactions
from engagement.services.counted import FlipResult, interactions_counted_set
from engagement.services.counters import (
    video_counter_add,
    video_counters_recount_many,
    video_counts,
)
from tests.conftest import database_state
from tests.factories import UserFactory, VideoFactory

CLIENT = ClientInfo(ip="198.51.100.4", device_id="device-9")
KIND_MODELS: dict[InteractionKind, Any] = {
    InteractionKind.LIKE: Like,
    InteractionKind.COMMENT: Comment,
    InteractionKind.COMMENT_LIKE: CommentLike,
    InteractionKind.SHARE: Share,
    InteractionKind.PLAY: Play,
    InteractionKind.FOLLOW: Follow,
}


def raw_counts(*videos: Video) -> dict[int, dict[str, int]]:
    """The counts recomputed from the rows, to compare with the sharded counters."""
    return {
        video.pk: {
            "likes": Like.objects.filter(video=video, counted=True).count(),
            "comments": Comment.objects.filter(video=video, counted=True).count(),
            "shares": Share.objects.filter(video=video, counted=True).count(),
            "plays": Play.objects.filter(video=video, counted=True).count(),
        }
        for video in videos
    }


def like_counts(*comments: Comment) -> list[int]:
    return [Comment.objects.get(pk=comment.pk).like_count for comment in comments]


@dataclass
class World:
    bots: list[User]
    people: list[User]
    videos: list[Video]
    comments: dict[str, Comment]

    def rows_of(self, kind: InteractionKind, users: list[User]) -> list[int]:
        model = KIND_MODELS[kind]
        return list(
            model.objects.filter(user__in=users).order_by("pk").values_list("pk", flat=True)
        )


@pytest.fixture
def world(db: None) -> World:
    """Two bots and two people interacting with two videos of two creators, through the services
    (so the counters are what the API would have left)."""
    b1, b2, p1, p2 = UserFactory.create_batch(4)
    v1, v2 = VideoFactory.create(), VideoFactory.create()
    for user in (b1, b2, p1, p2):
        interactions.video_like(user=user, video_id=v1.pk, client=CLIENT)
    for user in (b1, p1):
        interactions.video_like(user=user, video_id=v2.pk, client=CLIENT)
    cb1 = interactions.comment_create(user=b1, video_id=v1.pk, text="buy", client=CLIENT)
    cp1 = interactions.comment_create(user=p1, video_id=v1.pk, text="nice", client=CLIENT)
    cp2 = interactions.comment_create(user=p2, video_id=v2.pk, text="wow", client=CLIENT)
    for user, comment in ((b1, cp1), (b2, cp1), (p2, cp1), (b2, cb1), (p1, cp2)):
        interactions.comment_like(user=user, comment_id=comment.pk, client=CLIENT)
    for user, video in ((b1, v1), (b1, v1), (p1, v2)):
        interactions.share_create(user=user, video_id=video.pk, channel="", client=CLIENT)
    for user, video in ((b1, v1), (b1, v1), (b1, v1), (p1, v1), (b2, v2), (p2, v2)):
        interactions.play_create(
            user=user, video_id=video.pk, watched_ms=1000, completed=False, client=CLIENT
        )
    interactions.creator_follow(
        user=b1, creator_id=v1.creator_id, source_video_id=v1.pk, client=CLIENT
    )
    interactions.creator_follow(
        user=p1, creator_id=v1.creator_id, source_video_id=None, client=CLIENT
    )
    interactions.creator_follow(
        user=b2, creator_id=v2.creator_id, source_video_id=v2.pk, client=CLIENT
    )
    return World(
        bots=[b1, b2],
        people=[p1, p2],
        videos=[v1, v2],
        comments={"cb1": cb1, "cp1": cp1, "cp2": cp2},
    )


BEFORE = (
    {"likes": 4, "comments": 2, "shares": 2, "plays": 4},
    {"likes": 2, "comments": 1, "shares": 1, "plays": 2},
)
# The bots' likes, comment, comment likes, shares, plays and follows stop counting.
AFTER = (
    {"likes": 2, "comments": 1, "shares": 0, "plays": 1},
    {"likes": 1, "comments": 1, "shares": 1, "plays": 1},
)


def _flip_bots(world: World, counted: bool) -> dict[InteractionKind, FlipResult]:
    return {
        kind: interactions_counted_set(
            kind=kind, ids=world.rows_of(kind, world.bots), counted=counted
        )
        for kind in InteractionKind
    }


def test_flipping_every_kind_off_and_back_recounts_exactly(world: World) -> None:
    v1, v2 = world.videos
    c = world.comments
    assert (
        video_counts([v1.pk, v2.pk]) == raw_counts(v1, v2) == {v1.pk: BEFORE[0], v2.pk: BEFORE[1]}
    )
    assert like_counts(c["cb1"], c["cp1"], c["cp2"]) == [1, 3, 1]

    # when an integrity decision flips every bot row off
    off = _flip_bots(world, counted=False)

    assert video_counts([v1.pk, v2.pk]) == raw_counts(v1, v2) == {v1.pk: AFTER[0], v2.pk: AFTER[1]}
    # the people's likes of comments still count; a flipped comment keeps its (counted) likes
    assert like_counts(c["cb1"], c["cp1"], c["cp2"]) == [0, 1, 1]
    assert {kind: result.flipped for kind, result in off.items()} == {
        InteractionKind.LIKE: 3,
        InteractionKind.COMMENT_LIKE: 3,
        InteractionKind.COMMENT: 1,
        InteractionKind.SHARE: 2,
        InteractionKind.PLAY: 4,
        InteractionKind.FOLLOW: 2,
    }
    assert CountedFlip.objects.filter(counted=False).count() == 15
    assert Like.objects.count() == 6  # nothing is deleted

    # when the decision is reversed
    back = _flip_bots(world, counted=True)

    assert (
        video_counts([v1.pk, v2.pk]) == raw_counts(v1, v2) == {v1.pk: BEFORE[0], v2.pk: BEFORE[1]}
    )
    assert like_counts(c["cb1"], c["cp1"], c["cp2"]) == [1, 3, 1]
    assert {kind: result.flipped for kind, result in back.items()} == {
        kind: result.flipped for kind, result in off.items()
    }
    assert CountedFlip.objects.filter(counted=True).count() == 15


def test_a_flip_reports_what_it_touched(world: World) -> None:
    b1, b2 = world.bots
    v1, v2 = world.videos
    c = world.comments

    off = _flip_bots(world, counted=False)

    assert off[InteractionKind.LIKE] == FlipResult(
        kind=InteractionKind.LIKE,
        counted=False,
        flipped=3,
        user_ids=[b1.pk, b2.pk],
        target_ids=[v1.pk, v2.pk],
        video_ids=[v1.pk, v2.pk],
    )
    assert off[InteractionKind.COMMENT_LIKE] == FlipResult(
        kind=InteractionKind.COMMENT_LIKE,
        counted=False,
        flipped=3,
        user_ids=[b1.pk, b2.pk],
        target_ids=[c["cb1"].pk, c["cp1"].pk],
        video_ids=[v1.pk],
    )
    assert off[InteractionKind.FOLLOW] == FlipResult(
        kind=InteractionKind.FOLLOW,
        counted=False,
        flipped=2,
        user_ids=[b1.pk, b2.pk],
        target_ids=sorted([v1.creator_id, v2.creator_id]),
        video_ids=[v1.pk, v2.pk],
    )


def test_each_flipped_row_is_recorded_with_its_data(world: World) -> None:
    b1, b2 = world.bots
    v1, _ = world.videos
    c = world.comments
    comment_likes = list(CommentLike.objects.filter(user__in=world.bots).order_by("pk"))
    before = timezone.now()

    interactions_counted_set(
        kind=InteractionKind.COMMENT_LIKE, ids=[like.pk for like in comment_likes], counted=False
    )

    records = list(
        CountedFlip.objects.order_by("pk").values(
            "kind", "row_id", "user_id", "target_id", "video_id", "counted",
            "interaction_created_at",
        )
    )  # fmt: skip
    assert records == [
        {
            "kind": "comment_like",
            "row_id": like.pk,
            "user_id": like.user_id,
            "target_id": like.comment_id,
            "video_id": v1.pk,
            "counted": False,
            "interaction_created_at": like.created_at,
        }
        for like in comment_likes
    ]
    assert [like.user_id for like in comment_likes] == [b1.pk, b2.pk, b2.pk]
    assert [like.comment_id for like in comment_likes] == [c["cp1"].pk, c["cp1"].pk, c["cb1"].pk]
    assert all(
        before <= at <= timezone.now()
        for at in CountedFlip.objects.values_list("created_at", flat=True)
    )


def test_a_follow_flip_records_its_source_video_or_none(world: World) -> None:
    follows = list(Follow.objects.order_by("pk"))

    interactions_counted_set(
        kind=InteractionKind.FOLLOW, ids=[follow.pk for follow in follows], counted=False
    )

    assert list(
        CountedFlip.objects.order_by("pk").values_list("row_id", "target_id", "video_id")
    ) == [(follow.pk, follow.creator_id, follow.source_video_id) for follow in follows]
    assert follows[1].source_video_id is None


def test_flipping_rows_already_in_that_state_changes_nothing_and_records_nothing(
    world: World,
) -> None:
    people_likes = world.rows_of(InteractionKind.LIKE, world.people)
    interactions_counted_set(
        kind=InteractionKind.LIKE,
        ids=world.rows_of(InteractionKind.LIKE, world.bots),
        counted=False,
    )
    before = database_state()

    # the bots' likes are off already, the people's likes are on: nothing to change
    results = [
        interactions_counted_set(
            kind=InteractionKind.LIKE,
            ids=world.rows_of(InteractionKind.LIKE, world.bots),
            counted=False,
        ),
        interactions_counted_set(kind=InteractionKind.LIKE, ids=people_likes, counted=True),
        interactions_counted_set(kind=InteractionKind.LIKE, ids=[], counted=False),
        interactions_counted_set(
            kind=InteractionKind.FOLLOW,
            ids=world.rows_of(InteractionKind.FOLLOW, world.people),
            counted=True,
        ),
        interactions_counted_set(
            kind=InteractionKind.COMMENT_LIKE, ids=[10**12, 10**12 + 1], counted=False
        ),
    ]

    assert [result.flipped for result in results] == [0, 0, 0, 0, 0]
    assert results[0] == FlipResult(InteractionKind.LIKE, False, 0, [], [], [])
    assert database_state() == before


def test_only_the_rows_that_change_are_flipped_and_recorded(world: World) -> None:
    v1, v2 = world.videos
    b1, b2 = world.bots
    b1_likes = world.rows_of(InteractionKind.LIKE, [b1])
    interactions_counted_set(kind=InteractionKind.LIKE, ids=b1_likes, counted=False)

    result = interactions_counted_set(
        kind=InteractionKind.LIKE,
        ids=world.rows_of(InteractionKind.LIKE, world.bots),
        counted=False,
    )

    assert (result.flipped, result.user_ids, result.video_ids) == (1, [b2.pk], [v1.pk])
    assert CountedFlip.objects.count() == 3
    assert video_counts([v1.pk, v2.pk]) == raw_counts(v1, v2)
    assert video_counts([v1.pk])[v1.pk]["likes"] == 2


def test_a_flip_rewrites_counters_that_had_drifted(world: World) -> None:
    # the recount is from the rows, not a delta: a drifted counter comes out exact
    v1, v2 = world.videos
    video_counter_add(video_id=v1.pk, counter="likes", delta=40)

    interactions_counted_set(
        kind=InteractionKind.LIKE,
        ids=world.rows_of(InteractionKind.LIKE, world.bots),
        counted=False,
    )

    assert video_counts([v1.pk, v2.pk]) == raw_counts(v1, v2)
    assert video_counts([v1.pk])[v1.pk]["likes"] == 2


def test_an_unknown_kind_is_refused_before_anything_changes(world: World) -> None:
    before = database_state()

    with pytest.raises(ValueError, match="'vote' is not a valid InteractionKind"):
        interactions_counted_set(kind="vote", ids=[1], counted=False)  # type: ignore[arg-type]

    assert database_state() == before


def test_the_flip_records_are_append_only(world: World) -> None:
    interactions_counted_set(
        kind=InteractionKind.LIKE,
        ids=world.rows_of(InteractionKind.LIKE, world.bots),
        counted=False,
    )

    with (
        pytest.raises(DatabaseError, match="engagement_countedflip is append-only"),
        transaction.atomic(),
    ):
        CountedFlip.objects.update(counted=True)

    assert list(CountedFlip.objects.values_list("counted", flat=True)) == [False] * 3


# --- a bounded number of statements, whatever the number of rows ----------------------------------
FLIP_QUERIES = 8  # savepoint, videos, video locks, flip, two counter statements, record, release


def _bulk_likes(count: int, videos: int = 10) -> tuple[list[int], list[Video]]:
    """`count` counted likes spread over `videos` videos, written in bulk, counters rebuilt."""
    now = timezone.now()
    creator = UserFactory.create()
    video_rows = Video.objects.bulk_create(
        [Video(creator=creator, title=f"v{n}", duration_ms=1000) for n in range(videos)]
    )
    stamp = f"{now.timestamp():.0f}"
    users = User.objects.bulk_create(
        [User(username=f"bulk-{stamp}-{n}") for n in range(count // videos)]
    )
    likes = Like.objects.bulk_create(
        [Like(user=user, video=video) for user in users for video in video_rows], batch_size=5000
    )
    video_counters_recount_many(video_ids=[video.pk for video in video_rows])
    return [like.pk for like in likes], video_rows


@pytest.mark.django_db
@pytest.mark.parametrize("count", [100, 20_000])
def test_a_flip_runs_the_same_few_statements_for_100_or_20000_rows(
    count: int, django_assert_num_queries: Callable[..., Any]
) -> None:
    like_ids, videos = _bulk_likes(count)
    assert sum(counts["likes"] for counts in video_counts([v.pk for v in videos]).values()) == count
    half = like_ids[: count // 2]

    with django_assert_num_queries(FLIP_QUERIES):
        off = interactions_counted_set(kind=InteractionKind.LIKE, ids=half, counted=False)

    assert off.flipped == count // 2
    assert video_counts([v.pk for v in videos]) == raw_counts(*videos)
    assert sum(c["likes"] for c in video_counts([v.pk for v in videos]).values()) == count // 2
    assert CountedFlip.objects.count() == count // 2

    with django_assert_num_queries(FLIP_QUERIES):
        back = interactions_counted_set(kind=InteractionKind.LIKE, ids=like_ids, counted=True)

    assert back.flipped == count // 2
    assert sum(c["likes"] for c in video_counts([v.pk for v in videos]).values()) == count
    assert CountedFlip.objects.count() == count


# --- concurrency ----------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_flip_racing_likes_and_unlikes_of_the_same_video_ends_exact() -> None:
    # given a video liked by 20 bots and 15 people, and 20 newcomers about to like it
    video = VideoFactory.create()
    bots, stayers, leavers, newcomers = (UserFactory.create_batch(n) for n in (20, 5, 10, 20))
    for user in [*bots, *stayers, *leavers]:
        interactions.video_like(user=user, video_id=video.pk, client=CLIENT)
    bot_likes = list(Like.objects.filter(user__in=bots).values_list("pk", flat=True))
    assert video_counts([video.pk])[video.pk]["likes"] == 35

    actions: list[Callable[[], object]] = [
        lambda: interactions_counted_set(kind=InteractionKind.LIKE, ids=bot_likes, counted=False),
        *[
            (lambda user=user: interactions.video_like(user=user, video_id=video.pk, client=CLIENT))
            for user in newcomers
        ],
        *[
            (lambda user=user: interactions.video_unlike(user=user, video_id=video.pk))
            for user in leavers
        ],
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=30)
            action()
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then the counter is exactly the counted rows: the stayers and the newcomers
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert (
        video_counts([video.pk])
        == raw_counts(video)
        == {video.pk: {"likes": 25, "comments": 0, "shares": 0, "plays": 0}}
    )
    assert CountedFlip.objects.count() == 20
    assert Like.objects.filter(video=video).count() == 45
