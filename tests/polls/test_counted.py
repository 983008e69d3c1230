"""Flipping `counted` on votes and quiz answers, and comment_pick recounts (SPEC §2.4, §5)."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from core.client import ClientInfo
from engagement.models import Comment, CommentLike, InteractionKind, User
from engagement.services import interactions
from engagement.services.counted import interactions_counted_set
from polls.models import Answer, CountedFlip, Sticker, StickerResult, StickerTally, Vote
from polls.services.counted import (
    FlipResult,
    StickersRecount,
    answers_counted_set,
    comment_pick_stickers_recount,
    votes_counted_set,
)
from polls.services.finalizing import sticker_finalize
from polls.services.tallies import sticker_tally_refresh
from tests.factories import StickerFactory, UserFactory, VideoFactory, VoteFactory
from tests.polls import iso, option_ids, polls_state

pytestmark = pytest.mark.django_db

CLIENT = ClientInfo(ip="192.0.2.8", device_id="device-3")


def _at(minutes_ago: float) -> datetime:
    return timezone.now() - timedelta(minutes=minutes_ago)


def _finalize(sticker: Sticker) -> None:
    Sticker.objects.filter(pk=sticker.pk).update(
        state=Sticker.State.CLOSED, closed_at=timezone.now()
    )
    assert sticker_finalize(sticker_id=sticker.pk) is True
    sticker.refresh_from_db()


def _results(sticker: Sticker) -> list[tuple[int | None, int, int]]:
    """(option or comment, votes, rank) of the final result rows."""
    return [
        (row.option_id or row.comment_id, row.votes, row.rank)
        for row in StickerResult.objects.filter(sticker=sticker).order_by("rank")
    ]


def _final(sticker: Sticker) -> tuple[int | None, int | None, int | None]:
    sticker.refresh_from_db()
    return sticker.total_votes, sticker.winner_option_id, sticker.winner_comment_id


def _live(sticker: Sticker) -> tuple[int, list[tuple[int, int]]]:
    tally = StickerTally.objects.get(sticker=sticker)
    return tally.total_votes, [(entry["id"], entry["votes"]) for entry in tally.entries]


class Poll:
    """A poll (A, B, C): people vote A, A, B; bots vote B, B, B (and one of them also C).

    Counted: B 4, A 2 -> B wins. Without the bots: A 2, B 1 -> A wins.
    """

    def __init__(self, **sticker: Any) -> None:
        self.sticker = StickerFactory.create(options=["A", "B", "C"], max_choices=2, **sticker)
        self.a, self.b, self.c = option_ids(self.sticker)
        self.people = [
            VoteFactory.create(sticker=self.sticker, option_ids=[self.a], voted_at=_at(9)),
            VoteFactory.create(sticker=self.sticker, option_ids=[self.a], voted_at=_at(8)),
            VoteFactory.create(sticker=self.sticker, option_ids=[self.b], voted_at=_at(7)),
        ]
        self.bots = [
            VoteFactory.create(sticker=self.sticker, option_ids=[self.b], voted_at=_at(3)),
            VoteFactory.create(sticker=self.sticker, option_ids=[self.b], voted_at=_at(2)),
            VoteFactory.create(sticker=self.sticker, option_ids=[self.b, self.c], voted_at=_at(1)),
        ]

    @property
    def bot_ids(self) -> list[int]:
        return [vote.pk for vote in self.bots]


# --- votes ----------------------------------------------------------------------------------------
def test_a_vote_flip_recomputes_the_live_tally_exactly_and_the_reverse_restores_it(
    django_capture_on_commit_callbacks: Any,
) -> None:
    poll = Poll()
    sticker_tally_refresh(sticker_id=poll.sticker.pk)
    assert _live(poll.sticker) == (6, [(poll.b, 4), (poll.a, 2), (poll.c, 1)])

    with django_capture_on_commit_callbacks(execute=True):
        off = votes_counted_set(ids=poll.bot_ids, counted=False)

    assert off == FlipResult(
        kind=CountedFlip.Kind.VOTE,
        counted=False,
        flipped=3,
        user_ids=sorted(vote.user_id for vote in poll.bots),
        sticker_ids=[poll.sticker.pk],
    )
    assert _live(poll.sticker) == (3, [(poll.a, 2), (poll.b, 1), (poll.c, 0)])
    tally = StickerTally.objects.get(sticker=poll.sticker).entries
    assert tally[0] == {"id": poll.a, "votes": 2, "reached_at": iso(poll.people[1].voted_at)}

    with django_capture_on_commit_callbacks(execute=True):
        back = votes_counted_set(ids=poll.bot_ids, counted=True)

    assert back.flipped == 3
    assert _live(poll.sticker) == (6, [(poll.b, 4), (poll.a, 2), (poll.c, 1)])
    assert list(
        CountedFlip.objects.order_by("pk").values_list("kind", "row_id", "sticker_id", "counted")
    ) == [
        *[("vote", vote.pk, poll.sticker.pk, False) for vote in poll.bots],
        *[("vote", vote.pk, poll.sticker.pk, True) for vote in poll.bots],
    ]


def test_a_vote_flip_rewrites_final_results_and_the_winner_and_the_reverse_restores_them() -> None:
    poll = Poll()
    _finalize(poll.sticker)
    results_before = [(poll.b, 4, 1), (poll.a, 2, 2), (poll.c, 1, 3)]
    assert _results(poll.sticker) == results_before
    assert _final(poll.sticker) == (6, poll.b, None)

    votes_counted_set(ids=poll.bot_ids, counted=False)

    # the winner changes from B to A
    assert _results(poll.sticker) == [(poll.a, 2, 1), (poll.b, 1, 2), (poll.c, 0, 3)]
    assert _final(poll.sticker) == (3, poll.a, None)
    assert poll.sticker.state == Sticker.State.FINAL

    votes_counted_set(ids=poll.bot_ids, counted=True)

    assert _results(poll.sticker) == results_before
    assert _final(poll.sticker) == (6, poll.b, None)


def test_one_flip_recounts_every_sticker_it_touches(
    django_capture_on_commit_callbacks: Any,
) -> None:
    open_poll, final_poll, untouched = Poll(), Poll(), Poll()
    _finalize(final_poll.sticker)
    _finalize(untouched.sticker)

    with django_capture_on_commit_callbacks(execute=True):
        result = votes_counted_set(ids=[*open_poll.bot_ids, *final_poll.bot_ids], counted=False)

    assert result.flipped == 6
    assert result.sticker_ids == sorted([open_poll.sticker.pk, final_poll.sticker.pk])
    assert _live(open_poll.sticker) == (3, [(open_poll.a, 2), (open_poll.b, 1), (open_poll.c, 0)])
    assert _final(final_poll.sticker) == (3, final_poll.a, None)
    assert _final(untouched.sticker) == (6, untouched.b, None)


def test_flipping_votes_already_in_that_state_changes_nothing_and_records_nothing() -> None:
    poll = Poll()
    _finalize(poll.sticker)
    votes_counted_set(ids=poll.bot_ids, counted=False)
    before = polls_state()

    results = [
        votes_counted_set(ids=poll.bot_ids, counted=False),
        votes_counted_set(ids=[vote.pk for vote in poll.people], counted=True),
        votes_counted_set(ids=[], counted=True),
        votes_counted_set(ids=[10**12], counted=False),
    ]

    assert [result.flipped for result in results] == [0, 0, 0, 0]
    assert polls_state() == before


def test_the_polls_flip_records_are_append_only() -> None:
    poll = Poll()
    votes_counted_set(ids=poll.bot_ids, counted=False)

    with (
        pytest.raises(DatabaseError, match="polls_countedflip is append-only"),
        transaction.atomic(),
    ):
        CountedFlip.objects.update(counted=True)

    assert list(CountedFlip.objects.values_list("counted", flat=True)) == [False] * 3


# --- a bounded number of statements ---------------------------------------------------------------
# savepoint, stickers, sticker locks, flip; the final sticker's results (delete, insert, total,
# winner, save); the open sticker's live tally (stickers, savepoint, SET LOCAL, two aggregations,
# release, upsert); record, release. Per touched sticker, never per vote.
VOTE_FLIP_QUERIES = 18


@pytest.mark.parametrize("count", [100, 20_000])
def test_a_vote_flip_runs_the_same_statements_for_100_or_20000_votes(
    count: int, django_assert_num_queries: Callable[..., Any]
) -> None:
    open_sticker = StickerFactory.create(options=["A", "B"])
    final_sticker = StickerFactory.create(options=["A", "B"])
    users = User.objects.bulk_create(
        [User(username=f"voter-{count}-{n}") for n in range(count // 2)]
    )
    now = timezone.now()
    options = {sticker.pk: option_ids(sticker) for sticker in (open_sticker, final_sticker)}
    votes = Vote.objects.bulk_create(
        [
            Vote(
                sticker=sticker,
                user=user,
                option_ids=[options[sticker.pk][n % 2]],
                created_at=now,
                voted_at=now,
            )
            for sticker in (open_sticker, final_sticker)
            for n, user in enumerate(users)
        ],
        batch_size=5000,
    )
    _finalize(final_sticker)
    first_options = {choices[0] for choices in options.values()}
    a_votes = [vote.pk for vote in votes if vote.option_ids[0] in first_options]

    with django_assert_num_queries(VOTE_FLIP_QUERIES):
        result = votes_counted_set(ids=a_votes, counted=False)

    assert result.flipped == count // 2
    assert _final(final_sticker) == (count // 4, option_ids(final_sticker)[1], None)
    assert _live(open_sticker) == (
        count // 4,
        [(option_ids(open_sticker)[1], count // 4), (option_ids(open_sticker)[0], 0)],
    )
    assert CountedFlip.objects.count() == count // 2


# --- answers --------------------------------------------------------------------------------------
def test_an_answer_flip_records_each_answer_and_nothing_else_changes() -> None:
    quiz = StickerFactory.create(
        kind="quiz",
        checkpoints=[
            {"at_ms": 1000, "question": "1?", "options": ["x", "y"], "correct": [0]},
            {"at_ms": 2000, "question": "2?", "options": ["x", "y"], "correct": [1]},
        ],
    )
    bot, person = UserFactory.create_batch(2)
    answers = [
        Answer.objects.create(
            sticker=quiz, checkpoint=checkpoint, user=user, option_ids=[], is_correct=False
        )
        for user in (bot, person)
        for checkpoint in quiz.checkpoints.order_by("position")
    ]
    bot_answers = [answer.pk for answer in answers if answer.user_id == bot.pk]

    off = answers_counted_set(ids=bot_answers, counted=False)
    again = answers_counted_set(ids=bot_answers, counted=False)

    assert off == FlipResult(CountedFlip.Kind.ANSWER, False, 2, [bot.pk], [quiz.pk])
    assert again == FlipResult(CountedFlip.Kind.ANSWER, False, 0, [], [])
    assert list(Answer.objects.order_by("pk").values_list("user_id", "counted")) == [
        (bot.pk, False),
        (bot.pk, False),
        (person.pk, True),
        (person.pk, True),
    ]
    assert list(
        CountedFlip.objects.order_by("pk").values_list(
            "kind", "row_id", "user_id", "sticker_id", "counted", "interaction_created_at"
        )
    ) == [
        ("answer", answer.pk, bot.pk, quiz.pk, False, answer.created_at) for answer in answers[:2]
    ]
    quiz.refresh_from_db()
    assert (quiz.total_votes, quiz.state) == (None, Sticker.State.OPEN)


# --- comment_pick: engagement flips, polls recounts --------------------------------------------
def test_comment_pick_results_follow_comment_like_and_comment_flips(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a video whose comment X has 3 likes from bots and Y 2 from people
    video = VideoFactory.create()
    final_pick = StickerFactory.create(video=video, kind="comment_pick")
    open_pick = StickerFactory.create(video=video, kind="comment_pick")
    author = UserFactory.create()
    x = interactions.comment_create(user=author, video_id=video.pk, text="x", client=CLIENT)
    y = interactions.comment_create(user=author, video_id=video.pk, text="y", client=CLIENT)
    bots, people = UserFactory.create_batch(3), UserFactory.create_batch(2)
    for user in bots:
        interactions.comment_like(user=user, comment_id=x.pk, client=CLIENT)
    for user in people:
        interactions.comment_like(user=user, comment_id=y.pk, client=CLIENT)
    _finalize(final_pick)
    sticker_tally_refresh(sticker_id=open_pick.pk)
    assert _results(final_pick) == [(x.pk, 3, 1), (y.pk, 2, 2)]
    assert _final(final_pick) == (5, None, x.pk)
    assert _live(open_pick) == (5, [(x.pk, 3), (y.pk, 2)])
    bot_likes = list(CommentLike.objects.filter(user__in=bots).values_list("pk", flat=True))

    # when the bots' comment likes stop counting, and integrity recounts the video's stickers
    with django_capture_on_commit_callbacks(execute=True):
        flip = interactions_counted_set(
            kind=InteractionKind.COMMENT_LIKE, ids=bot_likes, counted=False
        )
        recount = comment_pick_stickers_recount(video_ids=flip.video_ids)

    assert recount == StickersRecount(final=[final_pick.pk], live=[open_pick.pk])
    assert _results(final_pick) == [(y.pk, 2, 1)]
    assert _final(final_pick) == (2, None, y.pk)
    assert _live(open_pick) == (2, [(y.pk, 2)])

    # when they count again
    with django_capture_on_commit_callbacks(execute=True):
        flip = interactions_counted_set(
            kind=InteractionKind.COMMENT_LIKE, ids=bot_likes, counted=True
        )
        comment_pick_stickers_recount(video_ids=flip.video_ids)

    assert _results(final_pick) == [(x.pk, 3, 1), (y.pk, 2, 2)]
    assert _final(final_pick) == (5, None, x.pk)
    assert _live(open_pick) == (5, [(x.pk, 3), (y.pk, 2)])

    # when the comment X itself stops counting: it leaves both leaderboards, its likes untouched
    with django_capture_on_commit_callbacks(execute=True):
        flip = interactions_counted_set(kind=InteractionKind.COMMENT, ids=[x.pk], counted=False)
        comment_pick_stickers_recount(video_ids=flip.video_ids)

    assert _final(final_pick) == (2, None, y.pk)
    assert _live(open_pick) == (2, [(y.pk, 2)])
    assert Comment.objects.get(pk=x.pk).like_count == 3

    with django_capture_on_commit_callbacks(execute=True):
        flip = interactions_counted_set(kind=InteractionKind.COMMENT, ids=[x.pk], counted=True)
        comment_pick_stickers_recount(video_ids=flip.video_ids)

    assert _results(final_pick) == [(x.pk, 3, 1), (y.pk, 2, 2)]
    assert _final(final_pick) == (5, None, x.pk)
    assert _live(open_pick) == (5, [(x.pk, 3), (y.pk, 2)])


def test_comment_pick_recount_of_videos_without_such_stickers_does_nothing() -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    before = polls_state()

    assert comment_pick_stickers_recount(video_ids=[sticker.video_id]) == StickersRecount([], [])
    assert polls_state() == before
