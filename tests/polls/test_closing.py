"""Closing on time, exact final results, the tie rule, idempotent finalization and recounts."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import Comment, CommentLike
from polls.models import Sticker, StickerResult, StickerTally, Vote
from polls.services import finalizing
from polls.services.finalizing import sticker_finalize, sticker_recount
from polls.services.lifecycle import stickers_close_due, stickers_open_due
from polls.tasks import close_due_stickers
from tests.conftest import wait_until
from tests.factories import (
    CommentFactory,
    CommentLikeFactory,
    StickerFactory,
    UserFactory,
    VoteFactory,
)
from tests.polls import iso, option_ids

ClientMaker = Callable[..., APIClient]


def _ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


def _make_due(sticker: Sticker, *, closed_seconds_ago: float = 1) -> datetime:
    """Move closes_at into the past (the API refuses that, so straight in the database)."""
    closes_at = _ago(seconds=closed_seconds_ago)
    Sticker.objects.filter(pk=sticker.pk).update(
        opens_at=closes_at - timedelta(hours=1), closes_at=closes_at
    )
    return closes_at


def _results(sticker: Sticker) -> list[tuple[Any, ...]]:
    return list(
        StickerResult.objects.filter(sticker=sticker)
        .order_by("rank")
        .values_list("rank", "option_id", "comment_id", "votes", "reached_at")
    )


def _vote(sticker: Sticker, option: int, at: datetime, *, counted: bool = True) -> Vote:
    return VoteFactory.create(
        sticker=sticker, option_ids=[option], created_at=at, voted_at=at, counted=counted
    )


# --- closing and opening by the clock -------------------------------------------------------------
@pytest.mark.django_db
def test_close_due_closes_exactly_the_stickers_whose_closing_time_passed() -> None:
    # given stickers in every situation
    due_open = StickerFactory.create(options=["A", "B"])
    due_open_closes_at = _make_due(due_open)
    due_scheduled = StickerFactory.create(options=["A", "B"], state="scheduled")
    _make_due(due_scheduled)
    due_comment_pick = StickerFactory.create(kind="comment_pick")
    _make_due(due_comment_pick)
    not_due = StickerFactory.create(options=["A", "B"])
    due_canceled = StickerFactory.create(options=["A", "B"], state="canceled")
    _make_due(due_canceled)
    already_closed = StickerFactory.create(options=["A", "B"], state="closed")
    final = StickerFactory.create(options=["A", "B"], state="final")
    _make_due(final)
    unlock_without_end = StickerFactory.create(kind="unlock", payload={"text": "tip"})

    # when the sweep runs
    awaiting = stickers_close_due()

    # then the due ones are closed at their closing time, and every closed one awaits finalizing
    assert sorted(awaiting) == sorted(
        [due_open.pk, due_scheduled.pk, due_comment_pick.pk, already_closed.pk]
    )
    states = dict(Sticker.objects.values_list("pk", "state"))
    assert {
        due_open.pk: "closed",
        due_scheduled.pk: "closed",
        due_comment_pick.pk: "closed",
        not_due.pk: "open",
        due_canceled.pk: "canceled",
        already_closed.pk: "closed",
        final.pk: "final",
        unlock_without_end.pk: "open",
    } == {pk: states[pk] for pk in states}
    assert Sticker.objects.get(pk=due_open.pk).closed_at == due_open_closes_at

    # and a second sweep closes nothing new
    assert sorted(stickers_close_due()) == sorted(awaiting)


@pytest.mark.django_db
def test_open_due_opens_scheduled_stickers_whose_time_came() -> None:
    due = StickerFactory.create(options=["A", "B"], state="scheduled", opens_at=_ago(seconds=1))
    later = StickerFactory.create(
        options=["A", "B"], state="scheduled", opens_at=timezone.now() + timedelta(hours=1)
    )

    assert stickers_open_due() == 1

    assert Sticker.objects.get(pk=due.pk).state == "open"
    assert Sticker.objects.get(pk=later.pk).state == "scheduled"
    assert stickers_open_due() == 0


# --- final results --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_finalize_computes_the_exact_result_from_counted_votes_only() -> None:
    # given a closed 2-choice poll: A 3 counted, B 2 counted, C only uncounted votes
    sticker = StickerFactory.create(options=["A", "B", "C"], max_choices=2, state="closed")
    a, b, c = option_ids(sticker)
    VoteFactory.create(sticker=sticker, option_ids=[a], voted_at=_ago(minutes=9))
    VoteFactory.create(sticker=sticker, option_ids=[a, b], voted_at=_ago(minutes=8))
    VoteFactory.create(sticker=sticker, option_ids=[b], voted_at=_ago(minutes=7))
    a_last = VoteFactory.create(sticker=sticker, option_ids=[a], voted_at=_ago(minutes=6))
    VoteFactory.create(sticker=sticker, option_ids=[c], voted_at=_ago(minutes=5), counted=False)
    VoteFactory.create(sticker=sticker, option_ids=[c, b], voted_at=_ago(minutes=4), counted=False)
    b_last = Vote.objects.get(sticker=sticker, option_ids=[b])
    before = timezone.now()

    # when it is finalized
    assert sticker_finalize(sticker_id=sticker.pk) is True

    # then the result rows, the total and the winner are exact
    sticker.refresh_from_db()
    assert _results(sticker) == [
        (1, a, None, 3, a_last.voted_at),
        (2, b, None, 2, b_last.voted_at),
        (3, c, None, 0, None),
    ]
    assert (sticker.state, sticker.total_votes, sticker.winner_option_id) == ("final", 4, a)
    assert sticker.finalized_at is not None and before <= sticker.finalized_at <= timezone.now()


@pytest.mark.django_db
def test_a_tie_goes_to_the_option_whose_last_counted_vote_is_older() -> None:
    # given a tie 2-2 where the second option reached 2 first (its last vote is older)
    sticker = StickerFactory.create(options=["First", "Second", "None"], state="closed")
    first, second, nothing = option_ids(sticker)
    _vote(sticker, first, _ago(minutes=10))
    _vote(sticker, second, _ago(minutes=9))
    _vote(sticker, second, _ago(minutes=8))
    _vote(sticker, first, _ago(minutes=5))
    # an uncounted, newer vote does not move the second option's time
    _vote(sticker, second, _ago(minutes=1), counted=False)

    assert sticker_finalize(sticker_id=sticker.pk) is True

    sticker.refresh_from_db()
    assert sticker.winner_option_id == second
    assert [(rank, option, votes) for rank, option, _, votes, _ in _results(sticker)] == [
        (1, second, 2),
        (2, first, 2),
        (3, nothing, 0),
    ]


@pytest.mark.django_db
def test_a_tie_at_the_same_instant_goes_to_the_lower_position() -> None:
    sticker = StickerFactory.create(options=["First", "Second"], state="closed")
    first, second = option_ids(sticker)
    at = _ago(minutes=3)
    _vote(sticker, second, at)
    _vote(sticker, first, at)

    assert sticker_finalize(sticker_id=sticker.pk) is True

    sticker.refresh_from_db()
    assert sticker.winner_option_id == first
    assert [option for _, option, _, _, _ in _results(sticker)] == [first, second]


@pytest.mark.django_db
def test_without_counted_votes_there_is_no_winner() -> None:
    sticker = StickerFactory.create(options=["A", "B"], state="closed")
    a, b = option_ids(sticker)
    _vote(sticker, a, _ago(minutes=1), counted=False)

    assert sticker_finalize(sticker_id=sticker.pk) is True

    sticker.refresh_from_db()
    assert (sticker.state, sticker.total_votes, sticker.winner_option_id) == ("final", 0, None)
    assert _results(sticker) == [(1, a, None, 0, None), (2, b, None, 0, None)]


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["open", "scheduled", "canceled", "moderated"])
def test_only_closed_stickers_are_finalized(state: str) -> None:
    sticker = StickerFactory.create(options=["A", "B"], state=state)
    _vote(sticker, option_ids(sticker)[0], _ago(minutes=1))

    assert sticker_finalize(sticker_id=sticker.pk) is False

    assert Sticker.objects.get(pk=sticker.pk).state == state
    assert _results(sticker) == []


@pytest.mark.django_db
def test_finalize_twice_changes_nothing_the_second_time() -> None:
    sticker = StickerFactory.create(options=["A", "B"], state="closed")
    a, b = option_ids(sticker)
    _vote(sticker, a, _ago(minutes=3))
    _vote(sticker, b, _ago(minutes=2))
    _vote(sticker, b, _ago(minutes=1))
    assert sticker_finalize(sticker_id=sticker.pk) is True
    rows = list(StickerResult.objects.filter(sticker=sticker).order_by("rank").values())
    first = Sticker.objects.filter(pk=sticker.pk).values().get()

    assert sticker_finalize(sticker_id=sticker.pk) is False

    assert list(StickerResult.objects.filter(sticker=sticker).order_by("rank").values()) == rows
    assert Sticker.objects.filter(pk=sticker.pk).values().get() == first
    assert (first["state"], first["winner_option_id"], first["total_votes"]) == ("final", b, 3)


@pytest.mark.django_db(transaction=True)
def test_a_crash_in_the_middle_of_finalizing_leaves_it_closed_and_a_rerun_finishes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a closed poll (closed straight in the database: no finalize task is queued)
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    _vote(sticker, a, _ago(minutes=2))
    _vote(sticker, a, _ago(minutes=1))
    _vote(sticker, b, _ago(minutes=3))
    Sticker.objects.filter(pk=sticker.pk).update(state="closed", closed_at=timezone.now())
    write = finalizing.final_results_write

    def write_then_crash(sticker: Sticker) -> None:
        write(sticker)
        assert StickerResult.objects.filter(sticker=sticker).count() == 2
        raise RuntimeError("worker lost")

    monkeypatch.setattr(finalizing, "final_results_write", write_then_crash)

    # when finalization dies after writing the result rows
    with pytest.raises(RuntimeError, match="worker lost"):
        sticker_finalize(sticker_id=sticker.pk)

    # then nothing of it was committed
    sticker.refresh_from_db()
    assert (sticker.state, sticker.finalized_at, sticker.winner_option_id) == (
        "closed",
        None,
        None,
    )
    assert sticker.total_votes is None
    assert _results(sticker) == []

    # when the retry runs
    monkeypatch.undo()
    assert sticker_finalize(sticker_id=sticker.pk) is True

    # then the result is the exact one
    sticker.refresh_from_db()
    assert (sticker.state, sticker.winner_option_id, sticker.total_votes) == ("final", a, 3)
    assert [(rank, option, votes) for rank, option, _, votes, _ in _results(sticker)] == [
        (1, a, 2),
        (2, b, 1),
    ]


@pytest.mark.django_db
def test_a_recount_after_integrity_decisions_changes_the_final_result() -> None:
    # given a final poll that A won 3-2
    sticker = StickerFactory.create(options=["A", "B"], state="closed")
    a, b = option_ids(sticker)
    bought = [_vote(sticker, a, _ago(minutes=minutes)) for minutes in (9, 8)]
    _vote(sticker, a, _ago(minutes=7))
    b_votes = [_vote(sticker, b, _ago(minutes=minutes)) for minutes in (6, 5)]
    assert sticker_finalize(sticker_id=sticker.pk) is True
    assert Sticker.objects.get(pk=sticker.pk).winner_option_id == a

    # when two of A's votes stop counting and the sticker is recounted
    Vote.objects.filter(pk__in=[vote.pk for vote in bought]).update(counted=False)
    assert sticker_recount(sticker_id=sticker.pk) is True

    # then B wins 2-1
    sticker.refresh_from_db()
    assert (sticker.state, sticker.winner_option_id, sticker.total_votes) == ("final", b, 3)
    assert [(rank, option, votes) for rank, option, _, votes, _ in _results(sticker)] == [
        (1, b, 2),
        (2, a, 1),
    ]
    assert _results(sticker)[0][4] == b_votes[1].voted_at

    # when the decision is dismissed, they count again and A wins again
    Vote.objects.filter(pk__in=[vote.pk for vote in bought]).update(counted=True)
    assert sticker_recount(sticker_id=sticker.pk) is True
    sticker.refresh_from_db()
    assert (sticker.winner_option_id, sticker.total_votes) == (a, 5)
    assert [(rank, option, votes) for rank, option, _, votes, _ in _results(sticker)] == [
        (1, a, 3),
        (2, b, 2),
    ]


@pytest.mark.django_db
def test_a_recount_of_an_open_sticker_writes_no_final_result() -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    _vote(sticker, option_ids(sticker)[0], _ago(minutes=1))

    assert sticker_recount(sticker_id=sticker.pk) is True

    sticker.refresh_from_db()
    assert (sticker.state, sticker.total_votes, sticker.winner_option_id) == ("open", None, None)
    assert _results(sticker) == []


# --- comment_pick ---------------------------------------------------------------------------------
def _like(comment: Comment, at: datetime, *, counted: bool = True) -> CommentLike:
    like = CommentLikeFactory.create(comment=comment, counted=counted)
    CommentLike.objects.filter(pk=like.pk).update(created_at=at)
    like.refresh_from_db()
    return like


@pytest.mark.django_db
def test_the_most_liked_comment_before_closing_wins() -> None:
    # given a comment pick closed 10 minutes ago
    sticker = StickerFactory.create(kind="comment_pick")
    closed_at = _make_due(sticker, closed_seconds_ago=600)
    assert stickers_close_due() == [sticker.pk]
    video = sticker.video
    old = _ago(hours=2)
    top, runner_up, late_bloomer, discounted = (
        CommentFactory.create(video=video) for _ in range(4)
    )
    Comment.objects.filter(pk__in=[top.pk, runner_up.pk, late_bloomer.pk, discounted.pk]).update(
        created_at=old
    )
    # top: 3 counted likes before closing
    top_last = [_like(top, closed_at - timedelta(minutes=m)) for m in (30, 20, 10)][-1]
    # runner_up: 2 counted before, 1 uncounted before, 3 after closing
    runner_up_last = [_like(runner_up, closed_at - timedelta(minutes=m)) for m in (25, 15)][-1]
    _like(runner_up, closed_at - timedelta(minutes=5), counted=False)
    for m in (1, 2, 3):
        _like(runner_up, closed_at + timedelta(minutes=m))
    # late_bloomer: 1 before, 4 after (including one exactly at the closing instant)
    late_last = _like(late_bloomer, closed_at - timedelta(minutes=40))
    _like(late_bloomer, closed_at)
    for m in (1, 2, 3):
        _like(late_bloomer, closed_at + timedelta(minutes=m))
    # discounted: a comment that itself stopped counting, 5 likes
    for m in (50, 49, 48, 47, 46):
        _like(discounted, closed_at - timedelta(minutes=m))
    Comment.objects.filter(pk=discounted.pk).update(counted=False)
    # a comment written after closing, liked before finalization
    after = CommentFactory.create(video=video)
    _like(after, timezone.now())
    # likes on another video's comments never count
    _like(CommentFactory.create(), closed_at - timedelta(minutes=1))

    # when it is finalized
    assert sticker_finalize(sticker_id=sticker.pk) is True

    # then the top comment wins 3 to 2 to 1
    sticker.refresh_from_db()
    assert (sticker.state, sticker.winner_comment_id, sticker.winner_option_id) == (
        "final",
        top.pk,
        None,
    )
    assert sticker.total_votes == 6
    assert _results(sticker) == [
        (1, None, top.pk, 3, top_last.created_at),
        (2, None, runner_up.pk, 2, runner_up_last.created_at),
        (3, None, late_bloomer.pk, 1, late_last.created_at),
    ]


@pytest.mark.django_db
def test_a_comment_tie_goes_to_the_comment_whose_last_like_is_older(
    make_client: ClientMaker,
) -> None:
    sticker = StickerFactory.create(kind="comment_pick")
    closed_at = _make_due(sticker, closed_seconds_ago=60)
    stickers_close_due()
    older_comment, newer_comment = (CommentFactory.create(video=sticker.video) for _ in range(2))
    Comment.objects.filter(video=sticker.video).update(created_at=closed_at - timedelta(hours=1))
    # the older comment reached 2 likes last; the newer comment reached 2 first
    _like(older_comment, closed_at - timedelta(minutes=30))
    _like(older_comment, closed_at - timedelta(minutes=5))
    _like(newer_comment, closed_at - timedelta(minutes=20))
    _like(newer_comment, closed_at - timedelta(minutes=10))

    assert sticker_finalize(sticker_id=sticker.pk) is True

    sticker.refresh_from_db()
    assert sticker.winner_comment_id == newer_comment.pk
    response = make_client(UserFactory.create()).get(f"/api/v1/stickers/{sticker.pk}/results")
    assert response.json() == {
        "sticker_id": sticker.pk,
        "state": "final",
        "final": True,
        "as_of": iso(sticker.finalized_at),
        "total_votes": 4,
        "leaderboard": [
            {"comment_id": newer_comment.pk, "likes": 2},
            {"comment_id": older_comment.pk, "likes": 2},
        ],
        "winner_comment_id": newer_comment.pk,
    }


@pytest.mark.django_db
def test_a_comment_pick_without_likes_has_no_winner() -> None:
    sticker = StickerFactory.create(kind="comment_pick", state="closed", closed_at=timezone.now())
    CommentFactory.create(video=sticker.video)

    assert sticker_finalize(sticker_id=sticker.pk) is True

    sticker.refresh_from_db()
    assert (sticker.state, sticker.winner_comment_id, sticker.total_votes) == ("final", None, 0)
    assert _results(sticker) == []


@pytest.mark.django_db
def test_a_comment_pick_recount_drops_likes_that_stopped_counting() -> None:
    sticker = StickerFactory.create(kind="comment_pick", state="closed", closed_at=timezone.now())
    bought, honest = (CommentFactory.create(video=sticker.video) for _ in range(2))
    Comment.objects.filter(video=sticker.video).update(created_at=_ago(hours=1))
    fake = [_like(bought, _ago(minutes=m)) for m in (30, 29, 28)]
    _like(honest, _ago(minutes=20))
    _like(honest, _ago(minutes=10))
    assert sticker_finalize(sticker_id=sticker.pk) is True
    assert Sticker.objects.get(pk=sticker.pk).winner_comment_id == bought.pk

    CommentLike.objects.filter(pk__in=[like.pk for like in fake[:2]]).update(counted=False)
    assert sticker_recount(sticker_id=sticker.pk) is True

    sticker.refresh_from_db()
    assert (sticker.winner_comment_id, sticker.total_votes) == (honest.pk, 3)
    assert [(rank, comment, votes) for rank, _, comment, votes, _ in _results(sticker)] == [
        (1, honest.pk, 2),
        (2, bought.pk, 1),
    ]


# --- through the broker, on a real worker ---------------------------------------------------------
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_closes_and_finalizes_a_due_sticker(celery_worker: object) -> None:
    # given an open poll whose closing time passed while nobody touched it: A 3 - B 2
    sticker = StickerFactory.create(options=["A", "B", "C"])
    a, b, c = option_ids(sticker)
    for minutes in (9, 8, 7):
        _vote(sticker, a, _ago(minutes=minutes))
    for minutes in (6, 5):
        _vote(sticker, b, _ago(minutes=minutes))
    for minutes in (4, 3, 2):
        _vote(sticker, c, _ago(minutes=minutes), counted=False)
    closes_at = _make_due(sticker)

    # when the periodic task goes through the broker to the worker process
    close_due_stickers.delay()

    # then the worker closed it at its closing time and finalized it with the exact result
    assert wait_until(lambda: Sticker.objects.get(pk=sticker.pk).state == "final", timeout=60)
    sticker.refresh_from_db()
    assert (sticker.winner_option_id, sticker.total_votes, sticker.closed_at) == (a, 5, closes_at)
    assert [(rank, option, votes) for rank, option, _, votes, _ in _results(sticker)] == [
        (1, a, 3),
        (2, b, 2),
        (3, c, 0),
    ]


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_closing_through_the_api_is_finalized_by_the_worker(
    celery_worker: object, make_client: ClientMaker
) -> None:
    # given an open ending with votes cast through the API
    sticker = StickerFactory.create(
        kind="ending",
        options=[
            {"label": "Stay", "payload": {"text": "stays"}},
            {"label": "Go", "payload": {"text": "goes"}},
        ],
    )
    stay, go = option_ids(sticker)
    for choice in (go, stay, go):
        client = make_client(UserFactory.create())
        response = client.post(
            f"/api/v1/stickers/{sticker.pk}/votes", {"option_ids": [choice]}, format="json"
        )
        assert response.status_code == 201
    # and the worker refreshed the live tally after the votes committed
    assert wait_until(
        lambda: StickerTally.objects.filter(sticker=sticker, total_votes=3).exists(), timeout=60
    )
    assert StickerTally.objects.get(sticker=sticker).entries[0]["id"] == go

    # when the creator closes it
    creator = make_client(sticker.video.creator)
    assert creator.post(f"/api/v1/stickers/{sticker.pk}/close").status_code == 200

    # then the worker finalizes it and the winning ending is revealed
    assert wait_until(lambda: Sticker.objects.get(pk=sticker.pk).state == "final", timeout=60)
    document = creator.get(f"/api/v1/stickers/{sticker.pk}").json()
    assert (document["state"], document["winner_option_id"]) == ("final", go)
    assert document["options"] == [
        {"id": stay, "label": "Stay", "payload": None, "locked": True},
        {"id": go, "label": "Go", "payload": {"text": "goes"}, "locked": False},
    ]
    results = creator.get(f"/api/v1/stickers/{sticker.pk}/results").json()
    assert (results["final"], results["total_votes"], results["winner_option_id"]) == (
        True,
        3,
        go,
    )
