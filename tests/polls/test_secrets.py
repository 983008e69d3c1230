"""Nobody sees what is not theirs to see (SPEC §2.7), on every endpoint that returns a sticker.

The endpoints that return a sticker document: GET videos/{id}/stickers, GET stickers/{id},
POST videos/{id}/stickers (201), PATCH stickers/{id}, POST stickers/{id}/close, /cancel and
/moderate. Each secret is a unique string; the tests assert it is absent from the raw JSON text.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import User, Video
from polls.models import Checkpoint, Sticker
from polls.services.finalizing import sticker_finalize
from tests.factories import (
    LikeFactory,
    StaffUserFactory,
    StickerFactory,
    UserFactory,
    VideoFactory,
    VoteFactory,
)
from tests.polls import option_ids

pytestmark = pytest.mark.django_db

# What the test clients answer (django-stubs names it privately).
ClientResponse = Any

ClientMaker = Callable[..., APIClient]

EXPLANATION_ONE = "EXPLAIN-ONE-7f3a because four"
EXPLANATION_TWO = "EXPLAIN-TWO-c9d0 because Paris"
WINNING_ENDING = "ENDING-WIN-9c1e the keeper returns"
LOSING_ENDING = "ENDING-LOSE-4b2f the ship sinks"
LOSING_MEDIA = "https://cdn.example.com/ENDING-LOSE-MEDIA-88aa.mp4"
UNLOCK_TIP = "UNLOCK-TIP-d41b press Ctrl+D"
UNLOCK_MEDIA = "https://cdn.example.com/UNLOCK-MEDIA-0e7c.png"


def _text(response: ClientResponse) -> str:
    return response.content.decode()


def _assert_absent(response: ClientResponse, *secrets: str) -> None:
    assert response.status_code in (200, 201), response.content
    text = _text(response)
    for secret in secrets:
        assert secret not in text, f"{secret!r} leaked in {response.wsgi_request.path}"


def _stickers_in(response: ClientResponse) -> list[dict[str, Any]]:
    """The sticker documents of a response: a list page or a single sticker."""
    body = response.json()
    return body.get("results", [body])


class Cast:
    """A video's creator, staff and two viewers, each with a client."""

    def __init__(self, make_client: ClientMaker, video: Video) -> None:
        self.video = video
        self.viewer_user: User = UserFactory.create()
        self.creator = make_client(video.creator)
        self.staff = make_client(StaffUserFactory.create())
        self.viewer = make_client(self.viewer_user)
        self.other = make_client(UserFactory.create())

    def reads(
        self, sticker_id: int, clients: tuple[APIClient, ...] | None = None
    ) -> list[ClientResponse]:
        """Every read of the sticker (list and detail) by every member of the cast."""
        return [
            response
            for client in clients or (self.creator, self.staff, self.viewer, self.other)
            for response in (
                client.get(f"/api/v1/videos/{self.video.pk}/stickers"),
                client.get(f"/api/v1/stickers/{sticker_id}"),
            )
        ]


def _later(**delta: float) -> str:
    return (timezone.now() + timedelta(**delta)).isoformat()


def _every_write_response(cast: Cast, body: dict[str, Any]) -> list[ClientResponse]:
    """Create the sticker (scheduled), read it, edit it, close, cancel and moderate it."""
    created = cast.creator.post(
        f"/api/v1/videos/{cast.video.pk}/stickers",
        {**body, "opens_at": _later(hours=1), "closes_at": _later(hours=2)},
        format="json",
    )
    assert created.status_code == 201, created.content
    sticker_id = created.json()["id"]
    responses = [created, *cast.reads(sticker_id)]
    responses.append(
        cast.creator.patch(f"/api/v1/stickers/{sticker_id}", {"prompt": "Edited"}, format="json")
    )
    responses.append(cast.creator.post(f"/api/v1/stickers/{sticker_id}/close"))
    responses.extend(cast.reads(sticker_id))
    responses.append(cast.creator.post(f"/api/v1/stickers/{sticker_id}/cancel"))
    responses.extend(cast.reads(sticker_id))
    responses.append(
        cast.staff.post(f"/api/v1/stickers/{sticker_id}/moderate", {"reason": "x"}, format="json")
    )
    responses.extend(
        cast.creator.get(path)
        for path in (f"/api/v1/videos/{cast.video.pk}/stickers", f"/api/v1/stickers/{sticker_id}")
    )
    assert [response.status_code for response in responses] == [201] + [200] * 30
    assert Sticker.objects.get(pk=sticker_id).state == "moderated"
    return responses


# --- quiz: correct answers and explanations -------------------------------------------------------
def _quiz_body() -> dict[str, Any]:
    return {
        "kind": "quiz",
        "prompt": "Quiz",
        "checkpoints": [
            {
                "at_ms": 1_000,
                "question": "2 + 2?",
                "options": [{"label": "5"}, {"label": "4"}],
                "correct": [1],
                "explanation": EXPLANATION_ONE,
            },
            {
                "at_ms": 2_000,
                "question": "Capital of France?",
                "options": [{"label": "Lyon"}, {"label": "Paris"}, {"label": "Nice"}],
                "correct": [1],
                "explanation": EXPLANATION_TWO,
            },
        ],
    }


def test_quiz_answers_are_never_sent_before_anyone_answered(make_client: ClientMaker) -> None:
    cast = Cast(make_client, VideoFactory.create())

    responses = _every_write_response(cast, _quiz_body())

    for response in responses:
        _assert_absent(response, EXPLANATION_ONE, EXPLANATION_TWO)
        for sticker in _stickers_in(response):
            assert [
                (
                    checkpoint["answered"],
                    checkpoint["correct_option_ids"],
                    checkpoint["explanation"],
                )
                for checkpoint in sticker["checkpoints"]
            ] == [(False, None, None), (False, None, None)]


def test_a_quiz_reveals_a_checkpoint_only_to_the_viewer_who_answered_it(
    make_client: ClientMaker,
) -> None:
    # given an open quiz with two checkpoints
    video = VideoFactory.create()
    cast = Cast(make_client, video)
    sticker = StickerFactory.create(
        video=video,
        kind="quiz",
        checkpoints=[
            {
                "at_ms": 1_000,
                "question": "2 + 2?",
                "options": ["5", "4"],
                "correct": [1],
                "explanation": EXPLANATION_ONE,
            },
            {
                "at_ms": 2_000,
                "question": "Capital?",
                "options": ["Lyon", "Paris"],
                "correct": [1],
                "explanation": EXPLANATION_TWO,
            },
        ],
    )
    first, second = list(Checkpoint.objects.filter(sticker=sticker).order_by("position"))
    wrong, right = list(first.options.order_by("position").values_list("id", flat=True))

    # when the viewer answers the first checkpoint (wrongly)
    answered = cast.viewer.post(
        f"/api/v1/stickers/{sticker.pk}/checkpoints/{first.pk}/answer",
        {"option_ids": [wrong]},
        format="json",
    )

    # then the answer carries the feedback of that checkpoint only
    assert answered.status_code == 201, answered.content
    assert answered.json() == {
        "correct": False,
        "correct_option_ids": [right],
        "explanation": EXPLANATION_ONE,
        "progress": {"answered": 1, "total": 2, "correct": 0, "completed": False},
    }
    assert EXPLANATION_TWO not in _text(answered)
    # and the viewer's reads show the first checkpoint's answer, never the second's
    for response in (
        cast.viewer.get(f"/api/v1/videos/{video.pk}/stickers"),
        cast.viewer.get(f"/api/v1/stickers/{sticker.pk}"),
    ):
        _assert_absent(response, EXPLANATION_TWO)
        (document,) = _stickers_in(response)
        assert [
            (checkpoint["answered"], checkpoint["correct_option_ids"], checkpoint["explanation"])
            for checkpoint in document["checkpoints"]
        ] == [(True, [right], EXPLANATION_ONE), (False, None, None)]
        assert document["viewer"]["answers"] == [
            {"checkpoint_id": first.pk, "option_ids": [wrong], "correct": False}
        ]
    # and nobody else learns either answer: not the other viewer, the creator or staff
    for response in [
        *cast.reads(sticker.pk, clients=(cast.other, cast.creator, cast.staff)),
        cast.other.get(f"/api/v1/stickers/{sticker.pk}/progress"),
        cast.creator.post(f"/api/v1/stickers/{sticker.pk}/close"),
        cast.creator.post(f"/api/v1/stickers/{sticker.pk}/cancel"),
        cast.staff.post(f"/api/v1/stickers/{sticker.pk}/moderate", {}, format="json"),
    ]:
        _assert_absent(response, EXPLANATION_ONE, EXPLANATION_TWO)
    assert second.explanation == EXPLANATION_TWO


def test_a_quiz_has_no_results_to_leak(make_client: ClientMaker) -> None:
    sticker = StickerFactory.create(
        kind="quiz",
        checkpoints=[
            {
                "at_ms": 0,
                "question": "?",
                "options": ["a", "b"],
                "correct": [0],
                "explanation": EXPLANATION_ONE,
            }
        ],
    )

    response = make_client(sticker.video.creator).get(f"/api/v1/stickers/{sticker.pk}/results")

    assert response.status_code == 404
    assert response.json()["code"] == "no_results"
    assert EXPLANATION_ONE not in _text(response)


# --- ending: payloads until final, then only the winner -------------------------------------------
def _ending_body() -> dict[str, Any]:
    return {
        "kind": "ending",
        "prompt": "How does it end?",
        "options": [
            {"label": "Returns", "payload": {"text": WINNING_ENDING}},
            {"label": "Sinks", "payload": {"text": LOSING_ENDING, "media_url": LOSING_MEDIA}},
        ],
    }


def test_ending_payloads_are_never_sent_before_the_sticker_is_final(
    make_client: ClientMaker,
) -> None:
    cast = Cast(make_client, VideoFactory.create())

    responses = _every_write_response(cast, _ending_body())

    for response in responses:
        _assert_absent(response, WINNING_ENDING, LOSING_ENDING, LOSING_MEDIA)
        for sticker in _stickers_in(response):
            assert [(option["payload"], option["locked"]) for option in sticker["options"]] == [
                (None, True),
                (None, True),
            ]


def test_the_winning_ending_is_revealed_to_everyone_once_final_and_the_loser_stays_locked(
    make_client: ClientMaker,
) -> None:
    # given an open ending with 2 votes for the winner and 1 for the loser
    video = VideoFactory.create()
    cast = Cast(make_client, video)
    sticker = StickerFactory.create(
        video=video,
        kind="ending",
        options=[
            {"label": "Returns", "payload": {"text": WINNING_ENDING}},
            {"label": "Sinks", "payload": {"text": LOSING_ENDING, "media_url": LOSING_MEDIA}},
        ],
    )
    winner, loser = option_ids(sticker)
    VoteFactory.create(sticker=sticker, option_ids=[winner])
    VoteFactory.create(sticker=sticker, option_ids=[winner])
    VoteFactory.create(sticker=sticker, user=cast.viewer_user, option_ids=[loser])

    # when it is closed: still nothing revealed (closed is not final)
    closed = cast.creator.post(f"/api/v1/stickers/{sticker.pk}/close")
    for response in [closed, *cast.reads(sticker.pk)]:
        _assert_absent(response, WINNING_ENDING, LOSING_ENDING, LOSING_MEDIA)
    results = cast.creator.get(f"/api/v1/stickers/{sticker.pk}/results")
    _assert_absent(results, WINNING_ENDING, LOSING_ENDING, LOSING_MEDIA)

    # when it is finalized
    assert sticker_finalize(sticker_id=sticker.pk) is True

    # then everyone (the viewer who voted for the loser included) sees the winning ending only
    for response in cast.reads(sticker.pk):
        _assert_absent(response, LOSING_ENDING, LOSING_MEDIA)
        assert WINNING_ENDING in _text(response)
        (document,) = _stickers_in(response)
        assert document["state"] == "final"
        assert document["winner_option_id"] == winner
        assert document["options"] == [
            {
                "id": winner,
                "label": "Returns",
                "payload": {"text": WINNING_ENDING},
                "locked": False,
            },
            {"id": loser, "label": "Sinks", "payload": None, "locked": True},
        ]
    results = cast.viewer.get(f"/api/v1/stickers/{sticker.pk}/results")
    _assert_absent(results, WINNING_ENDING, LOSING_ENDING, LOSING_MEDIA)

    # and when staff moderate it, it is hidden again, in the answer and for the creator
    moderated = cast.staff.post(f"/api/v1/stickers/{sticker.pk}/moderate", {}, format="json")
    for response in (moderated, cast.creator.get(f"/api/v1/stickers/{sticker.pk}")):
        _assert_absent(response, WINNING_ENDING, LOSING_ENDING, LOSING_MEDIA)


def test_a_final_ending_without_votes_reveals_nothing(make_client: ClientMaker) -> None:
    video = VideoFactory.create()
    cast = Cast(make_client, video)
    sticker = StickerFactory.create(
        video=video,
        kind="ending",
        state="closed",
        options=[
            {"label": "Returns", "payload": {"text": WINNING_ENDING}},
            {"label": "Sinks", "payload": {"text": LOSING_ENDING}},
        ],
    )
    assert sticker_finalize(sticker_id=sticker.pk) is True

    for response in cast.reads(sticker.pk):
        _assert_absent(response, WINNING_ENDING, LOSING_ENDING)
        (document,) = _stickers_in(response)
        assert (document["state"], document["winner_option_id"]) == ("final", None)


# --- unlock: the payload only for viewers with a counted like -------------------------------------
def _unlock_body() -> dict[str, Any]:
    return {
        "kind": "unlock",
        "prompt": "Like to unlock",
        "payload": {"text": UNLOCK_TIP, "media_url": UNLOCK_MEDIA},
    }


def test_the_unlock_payload_is_never_sent_to_callers_who_did_not_like_the_video(
    make_client: ClientMaker,
) -> None:
    cast = Cast(make_client, VideoFactory.create())

    responses = _every_write_response(cast, _unlock_body())

    for response in responses:
        _assert_absent(response, UNLOCK_TIP, UNLOCK_MEDIA)
        for sticker in _stickers_in(response):
            assert (sticker["payload"], sticker["viewer"]["unlocked"]) == (None, False)


def test_the_unlock_payload_follows_the_viewers_counted_like(make_client: ClientMaker) -> None:
    # given an open unlock sticker
    video = VideoFactory.create()
    cast = Cast(make_client, video)
    sticker = StickerFactory.create(
        video=video, kind="unlock", payload={"text": UNLOCK_TIP, "media_url": UNLOCK_MEDIA}
    )
    # and a second viewer whose like does not count (integrity)
    discounted = UserFactory.create()
    LikeFactory.create(user=discounted, video=video, counted=False)
    discounted_client = make_client(discounted)

    def reads(client: APIClient) -> list[ClientResponse]:
        return [
            client.get(f"/api/v1/videos/{video.pk}/stickers"),
            client.get(f"/api/v1/stickers/{sticker.pk}"),
        ]

    # before liking, the viewer sees it locked; the discounted liker too
    for response in [*reads(cast.viewer), *reads(discounted_client)]:
        _assert_absent(response, UNLOCK_TIP, UNLOCK_MEDIA)
        (document,) = _stickers_in(response)
        assert (document["payload"], document["viewer"]["unlocked"]) == (None, False)

    # after liking the video, the viewer (and only the viewer) sees the tip
    assert cast.viewer.put(f"/api/v1/videos/{video.pk}/like").status_code == 201
    for response in reads(cast.viewer):
        (document,) = _stickers_in(response)
        assert document["payload"] == {"text": UNLOCK_TIP, "media_url": UNLOCK_MEDIA}
        assert document["viewer"]["unlocked"] is True
    for response in [*reads(cast.other), *reads(cast.creator), *reads(cast.staff)]:
        _assert_absent(response, UNLOCK_TIP, UNLOCK_MEDIA)

    # after unliking, it is locked again
    assert cast.viewer.delete(f"/api/v1/videos/{video.pk}/like").status_code == 204
    for response in reads(cast.viewer):
        _assert_absent(response, UNLOCK_TIP, UNLOCK_MEDIA)
        (document,) = _stickers_in(response)
        assert document["viewer"]["unlocked"] is False

    # and the creator's and staff's writes never carry it
    for response in (
        cast.creator.post(f"/api/v1/stickers/{sticker.pk}/close"),
        cast.creator.post(f"/api/v1/stickers/{sticker.pk}/cancel"),
        cast.staff.post(f"/api/v1/stickers/{sticker.pk}/moderate", {}, format="json"),
    ):
        _assert_absent(response, UNLOCK_TIP, UNLOCK_MEDIA)
