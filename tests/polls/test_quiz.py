"""Quiz checkpoints: answers, instant feedback, progress, one answer per checkpoint."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import User
from polls.models import Answer, Checkpoint, Sticker
from tests.conftest import assert_problem, unknown_id
from tests.factories import StickerFactory, UserFactory
from tests.polls import polls_state, sticker_document

pytestmark = pytest.mark.django_db

ClientMaker = Callable[..., APIClient]


def _quiz(**fields: Any) -> Sticker:
    """Two checkpoints: "2 + 2?" (4 is right) and "Primes?" (2 and 5 are right)."""
    return StickerFactory.create(
        kind="quiz",
        checkpoints=[
            {
                "at_ms": 1_000,
                "question": "2 + 2?",
                "options": ["3", "4"],
                "correct": [1],
                "explanation": "Two and two make four.",
            },
            {
                "at_ms": 9_000,
                "question": "Primes?",
                "options": ["2", "4", "5"],
                "correct": [0, 2],
                "explanation": "",
            },
        ],
        **fields,
    )


def _checkpoints(sticker: Sticker) -> list[tuple[Checkpoint, list[int]]]:
    return [
        (checkpoint, list(checkpoint.options.order_by("position").values_list("id", flat=True)))
        for checkpoint in Checkpoint.objects.filter(sticker=sticker).order_by("position")
    ]


def _answer(
    client: APIClient, sticker: Sticker, checkpoint: Checkpoint, ids: Any, **headers: Any
) -> Any:
    return client.post(
        f"/api/v1/stickers/{sticker.pk}/checkpoints/{checkpoint.pk}/answer",
        {"option_ids": ids},
        format="json",
        **headers,
    )


@pytest.fixture
def player() -> User:
    return UserFactory.create()


@pytest.fixture
def player_client(player: User, make_client: ClientMaker) -> APIClient:
    return make_client(player, device_id="tablet-9")


def test_a_right_answer_gets_feedback_and_progress(
    player: User, player_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker = _quiz()
    (first, (three, four)), _ = _checkpoints(sticker)

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the sticker's rules,
    # the checkpoint, its right options, the answer, the answer read back, the progress (the
    # checkpoints counted, the player's answers)
    with django_assert_num_queries(10):
        response = _answer(player_client, sticker, first, [four])

    assert response.status_code == 201, response.content
    assert response.json() == {
        "correct": True,
        "correct_option_ids": [four],
        "explanation": "Two and two make four.",
        "progress": {"answered": 1, "total": 2, "correct": 1, "completed": False},
    }
    answer = Answer.objects.get()
    assert (
        answer.sticker_id,
        answer.checkpoint_id,
        answer.user_id,
        answer.option_ids,
        answer.is_correct,
        answer.ip,
        answer.device_id,
        answer.counted,
    ) == (sticker.pk, first.pk, player.pk, [four], True, "127.0.0.1", "tablet-9", True)
    assert three != four


def test_a_wrong_answer_gets_the_right_one(player_client: APIClient) -> None:
    sticker = _quiz()
    (first, (three, four)), _ = _checkpoints(sticker)

    response = _answer(player_client, sticker, first, [three])

    assert response.status_code == 201, response.content
    assert response.json() == {
        "correct": False,
        "correct_option_ids": [four],
        "explanation": "Two and two make four.",
        "progress": {"answered": 1, "total": 2, "correct": 0, "completed": False},
    }
    assert Answer.objects.get().is_correct is False


@pytest.mark.parametrize(
    ("chosen", "correct"),
    [((0, 2), True), ((2, 0), True), ((0,), False), ((0, 1, 2), False), ((1,), False)],
)
def test_a_checkpoint_with_several_right_options_needs_exactly_all_of_them(
    player_client: APIClient, chosen: tuple[int, ...], correct: bool
) -> None:
    sticker = _quiz()
    _, (second, ids) = _checkpoints(sticker)

    response = _answer(player_client, sticker, second, [ids[index] for index in chosen])

    assert response.status_code == 201, response.content
    assert response.json()["correct"] is correct
    assert response.json()["correct_option_ids"] == [ids[0], ids[2]]
    assert response.json()["explanation"] == ""
    assert Answer.objects.get().option_ids == sorted(ids[index] for index in chosen)


def test_answering_every_checkpoint_completes_the_quiz(player_client: APIClient) -> None:
    sticker = _quiz()
    (first, first_ids), (second, second_ids) = _checkpoints(sticker)
    progress_url = f"/api/v1/stickers/{sticker.pk}/progress"
    assert player_client.get(progress_url).json() == {
        "answered": 0,
        "total": 2,
        "correct": 0,
        "completed": False,
    }

    assert _answer(player_client, sticker, first, [first_ids[0]]).status_code == 201
    last = _answer(player_client, sticker, second, [second_ids[2], second_ids[0]])

    assert last.status_code == 201
    done = {"answered": 2, "total": 2, "correct": 1, "completed": True}
    assert last.json()["progress"] == done
    assert player_client.get(progress_url).json() == done
    # the sticker shows the player's own answers and both checkpoints revealed
    document = player_client.get(f"/api/v1/stickers/{sticker.pk}").json()
    assert document == sticker_document(
        sticker,
        checkpoints=[
            {
                "id": first.pk,
                "at_ms": 1_000,
                "question": "2 + 2?",
                "options": [
                    {"id": first_ids[0], "label": "3"},
                    {"id": first_ids[1], "label": "4"},
                ],
                "answered": True,
                "correct_option_ids": [first_ids[1]],
                "explanation": "Two and two make four.",
            },
            {
                "id": second.pk,
                "at_ms": 9_000,
                "question": "Primes?",
                "options": [
                    {"id": second_ids[0], "label": "2"},
                    {"id": second_ids[1], "label": "4"},
                    {"id": second_ids[2], "label": "5"},
                ],
                "answered": True,
                "correct_option_ids": [second_ids[0], second_ids[2]],
                "explanation": "",
            },
        ],
        viewer={
            "vote": None,
            "answers": [
                {"checkpoint_id": first.pk, "option_ids": [first_ids[0]], "correct": False},
                {
                    "checkpoint_id": second.pk,
                    "option_ids": [second_ids[0], second_ids[2]],
                    "correct": True,
                },
            ],
            "progress": done,
            "unlocked": None,
        },
    )


def test_progress_is_each_players_own(
    make_client: ClientMaker,
    player_client: APIClient,
    django_assert_num_queries: Callable[..., Any],
) -> None:
    sticker = _quiz()
    (first, ids), _ = _checkpoints(sticker)
    assert _answer(player_client, sticker, first, [ids[1]]).status_code == 201
    client = make_client(UserFactory.create())

    # the device token; the sticker (with its options, checkpoints and their options: the
    # same read as the detail's); the checkpoints counted, the player's answers
    with django_assert_num_queries(7):
        response = client.get(f"/api/v1/stickers/{sticker.pk}/progress")

    assert response.json() == {"answered": 0, "total": 2, "correct": 0, "completed": False}


def test_a_second_answer_to_the_same_checkpoint_is_refused(player_client: APIClient) -> None:
    sticker = _quiz()
    (first, (three, four)), _ = _checkpoints(sticker)
    assert _answer(player_client, sticker, first, [three]).status_code == 201
    before = polls_state()

    for choice in ([four], [three]):
        assert_problem(
            _answer(player_client, sticker, first, choice),
            409,
            "already_answered",
            "You already answered this checkpoint.",
        )

    assert polls_state() == before
    assert Answer.objects.get().option_ids == [three]


def test_one_answer_per_user_and_checkpoint_is_a_database_constraint(player: User) -> None:
    sticker = _quiz()
    (first, (three, four)), _ = _checkpoints(sticker)
    Answer.objects.create(
        sticker=sticker, checkpoint=first, user=player, option_ids=[three], is_correct=False
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        Answer.objects.create(
            sticker=sticker, checkpoint=first, user=player, option_ids=[four], is_correct=True
        )

    assert list(Answer.objects.values_list("option_ids", flat=True)) == [[three]]


def test_a_retried_answer_with_the_same_idempotency_key_replays_the_first(
    player_client: APIClient,
) -> None:
    sticker = _quiz()
    (first, (_three, four)), _ = _checkpoints(sticker)
    original = _answer(player_client, sticker, first, [four], HTTP_IDEMPOTENCY_KEY="answer-1")
    assert original.status_code == 201
    before = polls_state()

    retried = _answer(player_client, sticker, first, [four], HTTP_IDEMPOTENCY_KEY="answer-1")

    assert (retried.status_code, retried.json()) == (201, original.json())
    assert retried["Idempotent-Replayed"] == "true"
    assert polls_state() == before


def test_bad_choices_are_refused_and_nothing_is_written(player_client: APIClient) -> None:
    sticker = _quiz()
    (first, first_ids), (_second, second_ids) = _checkpoints(sticker)
    before = polls_state()

    assert_problem(
        _answer(player_client, sticker, first, [second_ids[0]]),
        400,
        "foreign_option",
        "Invalid input: option_ids: not options of this sticker.",
        errors={"option_ids": [f"Not options of this sticker: [{second_ids[0]}]."]},
    )
    assert_problem(
        _answer(player_client, sticker, first, [first_ids[0], first_ids[0]]),
        400,
        "duplicate_options",
        "Invalid input: option_ids: an option is listed twice.",
        errors={"option_ids": ["An option is listed twice."]},
    )
    assert_problem(
        _answer(player_client, sticker, first, [*first_ids, second_ids[0]]),
        400,
        "too_many_options",
        "Invalid input: option_ids: choose at most 2.",
        errors={"option_ids": ["Choose at most 2 option(s)."]},
    )
    assert_problem(
        _answer(player_client, sticker, first, []),
        400,
        "invalid",
        "Invalid input: option_ids: choose at least one option.",
        errors={"option_ids": ["Choose at least one option."]},
    )
    assert_problem(
        _answer(player_client, sticker, first, ["4"]),
        400,
        "invalid",
        "Invalid input: option_ids.0: Must be an integer.",
        errors={"option_ids.0": ["Must be an integer."]},
    )
    assert_problem(
        _answer(player_client, sticker, first, list(range(1, 8))),
        400,
        "invalid",
        "Invalid input: option_ids: Ensure this field has no more than 6 elements.",
        errors={"option_ids": ["Ensure this field has no more than 6 elements."]},
    )
    assert polls_state() == before


def test_unknown_checkpoints_and_checkpoints_of_other_stickers_are_404(
    player_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    sticker = _quiz()
    (_, ids), _ = _checkpoints(sticker)
    other_first, _ = _checkpoints(_quiz())
    before = polls_state()

    for checkpoint_id in (unknown_id(Checkpoint), other_first[0].pk):
        # the device token; the sticker's rules and no such checkpoint of it, in the atomic
        # block (in a test a savepoint, rolled back and released)
        with django_assert_num_queries(6):
            response = player_client.post(
                f"/api/v1/stickers/{sticker.pk}/checkpoints/{checkpoint_id}/answer",
                {"option_ids": ids[:1]},
                format="json",
            )
        assert_problem(response, 404, "not_found", "No checkpoint with this id on this sticker.")
    assert polls_state() == before


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"state": "scheduled", "opens_at": timezone.now() + timedelta(days=365)}, "scheduled"),
        ({"state": "closed"}, "closed"),
        ({"state": "final"}, "final"),
        ({"state": "canceled"}, "canceled"),
        (
            {"opens_at": timezone.now() - timedelta(days=2), "closes_at": timezone.now()},
            "closed",
        ),
    ],
)
def test_answers_to_a_quiz_that_is_not_open_are_refused(
    player_client: APIClient, fields: dict[str, Any], state: str
) -> None:
    sticker = _quiz(**fields)
    (first, ids), _ = _checkpoints(sticker)
    before = polls_state()

    response = _answer(player_client, sticker, first, ids[:1])

    assert_problem(response, 409, "sticker_not_open", f"The sticker is {state}, not open.")
    assert polls_state() == before


def test_answers_to_a_moderated_quiz_are_404(player_client: APIClient) -> None:
    sticker = _quiz(state="moderated")
    (first, ids), _ = _checkpoints(sticker)
    before = polls_state()

    response = _answer(player_client, sticker, first, ids[:1])

    assert_problem(response, 404, "not_found", "No sticker with this id.")
    assert polls_state() == before
