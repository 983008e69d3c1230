"""POST stickers/{id}/votes: one vote per (user, sticker), changes, refusals (SPEC §2.2, §3)."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import IdempotencyRecord
from core.renderers import JSONRenderer
from engagement.models import User
from polls.api.views import _vote_body, _vote_rendered
from polls.models import Sticker, Vote
from polls.services.voting import VOTE_SQL, VoteResult
from tests.conftest import assert_problem, unknown_id
from tests.factories import StickerFactory, UserFactory, VoteFactory
from tests.polls import iso, option_ids, polls_state

pytestmark = pytest.mark.django_db

ClientMaker = Callable[..., APIClient]


def _vote(client: APIClient, sticker: Sticker, ids: Any, **headers: Any) -> Any:
    return client.post(
        f"/api/v1/stickers/{sticker.pk}/votes", {"option_ids": ids}, format="json", **headers
    )


def _row(vote: Vote) -> dict[str, Any]:
    return {
        "sticker_id": vote.sticker_id,
        "user_id": vote.user_id,
        "option_ids": vote.option_ids,
        "created_at": vote.created_at,
        "voted_at": vote.voted_at,
        "ip": vote.ip,
        "device_id": vote.device_id,
        "counted": vote.counted,
    }


@pytest.fixture
def voter() -> User:
    return UserFactory.create()


@pytest.fixture
def voter_client(voter: User, make_client: ClientMaker) -> APIClient:
    return make_client(voter, device_id="phone-1")


# --- new votes, changes, repeats ------------------------------------------------------------------
def test_a_first_vote_is_201_and_stored_with_the_client(
    voter: User, voter_client: APIClient
) -> None:
    sticker = StickerFactory.create(options=["A", "B", "C"])
    _a, b, _c = option_ids(sticker)
    before = timezone.now()

    response = _vote(voter_client, sticker, [b])

    assert response.status_code == 201, response.content
    vote = Vote.objects.get()
    assert response.json() == {
        "sticker_id": sticker.pk,
        "option_ids": [b],
        "voted_at": iso(vote.voted_at),
        "changed": False,
    }
    assert _row(vote) == {
        "sticker_id": sticker.pk,
        "user_id": voter.pk,
        "option_ids": [b],
        "created_at": vote.voted_at,
        "voted_at": vote.voted_at,
        "ip": "127.0.0.1",
        "device_id": "phone-1",
        "counted": True,
    }
    assert before <= vote.voted_at <= timezone.now()


def test_changing_a_vote_replaces_it_in_place(voter: User, voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B", "C"])
    a, _b, c = option_ids(sticker)
    assert _vote(voter_client, sticker, [a]).status_code == 201
    first = Vote.objects.get()

    response = _vote(voter_client, sticker, [c])

    assert response.status_code == 200, response.content
    vote = Vote.objects.get()
    assert response.json() == {
        "sticker_id": sticker.pk,
        "option_ids": [c],
        "voted_at": iso(vote.voted_at),
        "changed": True,
    }
    assert vote.pk == first.pk
    assert _row(vote) == {**_row(first), "option_ids": [c], "voted_at": vote.voted_at}
    assert vote.voted_at > first.voted_at


def test_sending_the_same_vote_again_changes_nothing(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"], allow_vote_change=False)
    a, _b = option_ids(sticker)
    assert _vote(voter_client, sticker, [a]).status_code == 201
    before = polls_state()
    vote = Vote.objects.get()

    response = _vote(voter_client, sticker, [a])

    assert response.status_code == 200, response.content
    assert response.json() == {
        "sticker_id": sticker.pk,
        "option_ids": [a],
        "voted_at": iso(vote.voted_at),
        "changed": False,
    }
    assert polls_state() == before


def test_a_change_is_refused_when_the_sticker_does_not_allow_it(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"], allow_vote_change=False)
    a, b = option_ids(sticker)
    assert _vote(voter_client, sticker, [a]).status_code == 201
    before = polls_state()

    response = _vote(voter_client, sticker, [b])

    assert_problem(
        response,
        409,
        "vote_change_not_allowed",
        "This sticker does not allow changing a vote.",
    )
    assert polls_state() == before
    assert Vote.objects.get().option_ids == [a]


def test_several_choices_up_to_max_choices_are_stored_sorted(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B", "C"], max_choices=2)
    a, b, c = option_ids(sticker)

    response = _vote(voter_client, sticker, [c, a])

    assert response.status_code == 201, response.content
    assert response.json()["option_ids"] == [a, c]
    assert Vote.objects.get().option_ids == [a, c]
    # the same set in another order is the same vote
    again = _vote(voter_client, sticker, [a, c])
    assert (again.status_code, again.json()["changed"]) == (200, False)
    # a smaller set is a change
    fewer = _vote(voter_client, sticker, [b])
    assert (fewer.status_code, fewer.json()["changed"]) == (200, True)
    assert Vote.objects.get().option_ids == [b]


def test_an_ending_takes_votes_like_a_poll(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(
        kind="ending",
        options=[
            {"label": "A", "payload": {"text": "a"}},
            {"label": "B", "payload": {"text": "b"}},
        ],
    )
    _a, b = option_ids(sticker)

    response = _vote(voter_client, sticker, [b])

    assert response.status_code == 201, response.content
    assert Vote.objects.get().option_ids == [b]


def test_one_vote_per_user_and_sticker_is_a_database_constraint() -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    vote = VoteFactory.create(sticker=sticker, option_ids=[a])

    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(
            sticker=sticker,
            user=vote.user,
            option_ids=[b],
            created_at=timezone.now(),
            voted_at=timezone.now(),
        )

    assert list(Vote.objects.values_list("user_id", "option_ids")) == [(vote.user_id, [a])]


# --- refusals: nothing changes --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"option_ids": ["This field is required."]}),
        ({"option_ids": None}, {"option_ids": ["This field may not be null."]}),
        ({"option_ids": "1"}, {"option_ids": ['Expected a list of items but got type "str".']}),
        ({"option_ids": 1}, {"option_ids": ['Expected a list of items but got type "int".']}),
        ({"option_ids": ["1"]}, {"option_ids.0": ["Must be an integer."]}),
        ({"option_ids": [1.0]}, {"option_ids.0": ["Must be an integer."]}),
        ({"option_ids": [True]}, {"option_ids.0": ["Must be an integer."]}),
        ({"option_ids": [None]}, {"option_ids.0": ["This field may not be null."]}),
        (
            {"option_ids": [0]},
            {"option_ids.0": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            {"option_ids": [2**63]},
            {"option_ids.0": ["Ensure this value is less than or equal to 9223372036854775807."]},
        ),
        (
            {"option_ids": list(range(1, 12))},
            {"option_ids": ["Ensure this field has no more than 10 elements."]},
        ),
    ],
)
def test_malformed_votes_are_refused(
    voter_client: APIClient, body: dict, errors: dict[str, list[str]]
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    before = polls_state()

    response = voter_client.post(f"/api/v1/stickers/{sticker.pk}/votes", body, format="json")

    detail = "Invalid input: " + "; ".join(
        f"{name}: {messages[0]}" for name, messages in errors.items()
    )
    assert_problem(response, 400, "invalid", detail, errors=errors)
    assert polls_state() == before


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code", "detail"),
    [
        (
            b"{",
            "application/json",
            400,
            "parse_error",
            "JSON parse error - Expecting property "
            "name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            b'{"option_ids": [NaN]}',
            "application/json",
            400,
            "parse_error",
            "JSON parse error - Out of range float values are not JSON compliant: 'NaN'",
        ),
        (
            b'{"option_ids": [1]}',
            "text/plain",
            415,
            "unsupported_media_type",
            'Unsupported media type "text/plain" in request.',
        ),
    ],
)
def test_unreadable_vote_bodies_are_refused_as_drf_words_them(
    voter_client: APIClient, raw: bytes, content_type: str, status: int, code: str, detail: str
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    before = polls_state()

    response = voter_client.post(
        f"/api/v1/stickers/{sticker.pk}/votes", raw, content_type=content_type
    )

    assert_problem(response, status, code, detail)
    assert polls_state() == before


@pytest.mark.parametrize("charset", ["", "; charset=utf-8", "; charset=UTF8"])
def test_a_vote_body_in_utf8_is_read_with_or_without_its_charset(
    voter_client: APIClient, charset: str
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    body = json.dumps({"option_ids": [option_ids(sticker)[1]]}).encode()

    response = voter_client.post(
        f"/api/v1/stickers/{sticker.pk}/votes", body, content_type="application/json" + charset
    )

    assert response.status_code == 201
    assert response.json()["option_ids"] == [option_ids(sticker)[1]]


def test_choices_that_break_the_rules_are_refused_and_the_vote_stays(
    voter_client: APIClient,
) -> None:
    # given a poll (max 2 choices) where the caller already voted, and another poll
    sticker = StickerFactory.create(options=["A", "B", "C"], max_choices=2)
    a, b, c = option_ids(sticker)
    foreign = option_ids(StickerFactory.create(options=["X", "Y"]))[0]
    assert _vote(voter_client, sticker, [a]).status_code == 201
    before = polls_state()

    # then each bad choice is refused with its own code
    assert_problem(
        _vote(voter_client, sticker, [b, foreign]),
        400,
        "foreign_option",
        "Invalid input: option_ids: not options of this sticker.",
        errors={"option_ids": [f"Not options of this sticker: [{foreign}]."]},
    )
    assert_problem(
        _vote(voter_client, sticker, [b, b]),
        400,
        "duplicate_options",
        "Invalid input: option_ids: an option is listed twice.",
        errors={"option_ids": ["An option is listed twice."]},
    )
    assert_problem(
        _vote(voter_client, sticker, [a, b, c]),
        400,
        "too_many_options",
        "Invalid input: option_ids: choose at most 2.",
        errors={"option_ids": ["Choose at most 2 option(s)."]},
    )
    assert_problem(
        _vote(voter_client, sticker, []),
        400,
        "invalid",
        "Invalid input: option_ids: choose at least one option.",
        errors={"option_ids": ["Choose at least one option."]},
    )
    # and the vote is the one it was
    assert polls_state() == before


def test_two_options_on_a_single_choice_sticker_are_too_many(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    before = polls_state()

    response = _vote(voter_client, sticker, option_ids(sticker))

    assert_problem(
        response,
        400,
        "too_many_options",
        "Invalid input: option_ids: choose at most 1.",
        errors={"option_ids": ["Choose at most 1 option(s)."]},
    )
    assert polls_state() == before


@pytest.mark.parametrize("kind", ["quiz", "unlock", "comment_pick"])
def test_kinds_without_options_take_no_votes(voter_client: APIClient, kind: str) -> None:
    sticker = StickerFactory.create(kind=kind)
    before = polls_state()

    response = _vote(voter_client, sticker, [1])

    assert_problem(response, 400, "not_votable", f"A sticker of kind {kind} takes no votes.")
    assert polls_state() == before


def _not_open(kind: str) -> Sticker:
    now = timezone.now()
    if kind == "scheduled":
        return StickerFactory.create(
            state="scheduled", opens_at=now + timedelta(hours=1), options=["A", "B"]
        )
    if kind == "past closes_at":
        sticker = StickerFactory.create(options=["A", "B"])
        Sticker.objects.filter(pk=sticker.pk).update(closes_at=now - timedelta(milliseconds=1))
        return sticker
    return StickerFactory.create(state=kind, options=["A", "B"])


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        ("scheduled", "scheduled"),
        ("past closes_at", "closed"),
        ("closed", "closed"),
        ("final", "final"),
        ("canceled", "canceled"),
    ],
)
def test_votes_on_a_sticker_that_is_not_open_are_refused(
    voter_client: APIClient, kind: str, state: str
) -> None:
    sticker = _not_open(kind)
    before = polls_state()

    response = _vote(voter_client, sticker, option_ids(sticker)[:1])

    assert_problem(response, 409, "sticker_not_open", f"The sticker is {state}, not open.")
    assert polls_state() == before


def test_a_vote_change_after_closing_is_refused(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    assert _vote(voter_client, sticker, [a]).status_code == 201
    Sticker.objects.filter(pk=sticker.pk).update(state="closed")
    before = polls_state()

    response = _vote(voter_client, sticker, [b])

    assert_problem(response, 409, "sticker_not_open", "The sticker is closed, not open.")
    assert polls_state() == before


def test_votes_on_unknown_or_moderated_stickers_are_404(
    voter_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    moderated = StickerFactory.create(state="moderated", options=["A", "B"])
    unknown = unknown_id(Sticker)
    choices = option_ids(moderated)[:1]
    before = polls_state()

    # a refusal costs what a vote costs: the device token, the vote's one statement
    with django_assert_num_queries(2):
        unknown_response = voter_client.post(
            f"/api/v1/stickers/{unknown}/votes", {"option_ids": [1]}, format="json"
        )
    assert_problem(unknown_response, 404, "not_found", "No sticker with this id.")
    with django_assert_num_queries(2):
        moderated_response = _vote(voter_client, moderated, choices)
    assert_problem(moderated_response, 404, "not_found", "No sticker with this id.")
    assert polls_state() == before


# --- Idempotency-Key ------------------------------------------------------------------------------
def test_a_retried_vote_with_the_same_idempotency_key_replays_the_first_answer(
    voter_client: APIClient,
) -> None:
    # given a first vote for A sent with a key, then a change to B with another key
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    first = _vote(voter_client, sticker, [a], HTTP_IDEMPOTENCY_KEY="vote-1")
    assert first.status_code == 201
    changed = _vote(voter_client, sticker, [b], HTTP_IDEMPOTENCY_KEY="vote-2")
    assert (changed.status_code, changed.json()["changed"]) == (200, True)
    before = polls_state()

    # when the first request is retried
    retried = _vote(voter_client, sticker, [a], HTTP_IDEMPOTENCY_KEY="vote-1")

    # then it answers what it answered the first time and does not vote again
    assert retried.status_code == 201
    assert retried.json() == first.json()
    assert retried["Idempotent-Replayed"] == "true"
    assert polls_state() == before
    assert Vote.objects.get().option_ids == [b]


def test_a_repeated_vote_with_a_key_is_recorded_and_replayed_as_answered(
    voter_client: APIClient,
) -> None:
    # given a vote for A, then the same vote again with a key: nothing is written, so the answer
    # is recorded after the view (not in the vote's statement)
    sticker = StickerFactory.create(options=["A", "B"])
    a, _b = option_ids(sticker)
    assert _vote(voter_client, sticker, [a]).status_code == 201
    repeated = _vote(voter_client, sticker, [a], HTTP_IDEMPOTENCY_KEY="again")
    assert (repeated.status_code, repeated.json()["changed"]) == (200, False)
    assert repeated["Content-Type"] == "application/json"
    before = polls_state()

    # when it is retried
    retried = _vote(voter_client, sticker, [a], HTTP_IDEMPOTENCY_KEY="again")

    # then the same answer, byte for byte, is replayed
    assert (retried.status_code, retried.content) == (200, repeated.content)
    assert retried["Content-Type"] == "application/json"
    assert retried["Idempotent-Replayed"] == "true"
    assert polls_state() == before


def test_a_refused_vote_is_replayed_as_the_same_refusal(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"], state="closed")
    first = _vote(voter_client, sticker, option_ids(sticker)[:1], HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(first, 409, "sticker_not_open", "The sticker is closed, not open.")
    Sticker.objects.filter(pk=sticker.pk).update(state="open")
    before = polls_state()

    retried = _vote(voter_client, sticker, option_ids(sticker)[:1], HTTP_IDEMPOTENCY_KEY="k")

    assert_problem(retried, 409, "sticker_not_open", "The sticker is closed, not open.")
    assert retried["Idempotent-Replayed"] == "true"
    assert polls_state() == before
    assert not Vote.objects.exists()


def test_an_idempotency_key_reused_for_another_vote_is_refused(voter_client: APIClient) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    assert _vote(voter_client, sticker, [a], HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    before = polls_state()

    response = _vote(voter_client, sticker, [b], HTTP_IDEMPOTENCY_KEY="k")

    assert_problem(
        response,
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request.",
    )
    assert polls_state() == before
    assert Vote.objects.get().option_ids == [a]
    assert IdempotencyRecord.objects.count() == 1


def test_the_vote_statement_records_the_answer_it_sends(
    voter: User, voter_client: APIClient
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)

    first = _vote(voter_client, sticker, [a], HTTP_IDEMPOTENCY_KEY="new")
    changed = _vote(voter_client, sticker, [b], HTTP_IDEMPOTENCY_KEY="change")
    repeated = _vote(voter_client, sticker, [b], HTTP_IDEMPOTENCY_KEY="same")

    records = {
        record.key: (record.response_status, json.loads(record.response_body))
        for record in IdempotencyRecord.objects.filter(user=voter)
    }
    assert records == {
        "new": (201, first.json()),
        "change": (200, changed.json()),
        "same": (200, repeated.json()),
    }
    assert (first.json()["changed"], changed.json()["changed"]) == (False, True)
    assert repeated.json() == {**changed.json(), "changed": False}


def test_a_key_used_on_another_sticker_is_refused_and_writes_nothing(
    voter_client: APIClient,
) -> None:
    first, second = StickerFactory.create_batch(2, options=["A", "B"])
    assert (
        _vote(voter_client, first, option_ids(first)[:1], HTTP_IDEMPOTENCY_KEY="k").status_code
        == 201
    )
    before = polls_state()

    response = _vote(voter_client, second, option_ids(second)[:1], HTTP_IDEMPOTENCY_KEY="k")

    assert_problem(
        response,
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request.",
    )
    assert polls_state() == before
    assert not Vote.objects.filter(sticker=second).exists()


@pytest.mark.django_db(transaction=True)  # as a request runs it: in autocommit
def test_an_expired_key_votes_again_and_replaces_the_old_answer(
    voter: User, voter_client: APIClient
) -> None:
    # given an answer for key "old" past the TTL that the hourly purge has not removed yet
    sticker = StickerFactory.create(options=["A", "B"])
    a, _b = option_ids(sticker)
    expired_at = timezone.now() - settings.IDEMPOTENCY_KEY_TTL - timedelta(minutes=1)
    IdempotencyRecord.objects.create(
        user=voter, key="old", request_fingerprint="another request", response_status=204
    )
    IdempotencyRecord.objects.filter(key="old").update(created_at=expired_at)

    response = _vote(voter_client, sticker, [a], HTTP_IDEMPOTENCY_KEY="old")

    # then the key is free again: the vote runs and its answer is the one kept
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert Vote.objects.get(sticker=sticker).option_ids == [a]
    record = IdempotencyRecord.objects.get(user=voter, key="old")
    assert (record.response_status, json.loads(record.response_body)) == (201, response.json())
    assert record.created_at > expired_at


# --- query budgets ----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # autocommit, as a request runs: no test savepoints
def test_a_vote_makes_two_queries_the_token_and_its_one_statement(
    make_client: ClientMaker, django_assert_num_queries: Callable[..., Any]
) -> None:
    client = make_client(UserFactory.create(), device_id="phone-1")
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    # the device token (with its user), then the vote's one statement (the rules, the write,
    # the key's answer and the change's record together; prepared, and counted here)
    with django_assert_num_queries(2):
        assert _vote(client, sticker, [a]).status_code == 201
    with django_assert_num_queries(2):
        assert _vote(client, sticker, [b], HTTP_IDEMPOTENCY_KEY="k-1").status_code == 200
    # a retry with the key: the statement finds the answer on record, which is read and replayed
    with django_assert_num_queries(3):
        assert _vote(client, sticker, [b], HTTP_IDEMPOTENCY_KEY="k-1").status_code == 200
    # the same vote again (a double tap): the statement writes nothing and returns the vote
    with django_assert_num_queries(2):
        response = _vote(client, sticker, [b])
    assert (response.status_code, response.json()["changed"]) == (200, False)


def test_the_vote_statement_fits_psycopgs_cache_of_converted_queries() -> None:
    # psycopg converts a statement's %(name)s placeholders once and caches the result only for a
    # statement of at most MAX_CACHED_STATEMENT_LENGTH bytes and MAX_CACHED_STATEMENT_PARAMS
    # parameters; past either, every vote would convert its ~3.5 KB statement again.
    from psycopg import _queries

    assert len(VOTE_SQL.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH
    assert len(set(re.findall(r"%\((\w+)\)s", VOTE_SQL))) <= _queries.MAX_CACHED_STATEMENT_PARAMS


@pytest.mark.parametrize(
    "voted_at",
    [
        datetime(2026, 12, 1, 14, 0, 5, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 14, 0, 5, tzinfo=UTC),
        datetime(2026, 12, 1, 15, 0, 5, 1, tzinfo=timezone.get_fixed_timezone(60)),
    ],
)
@pytest.mark.parametrize("changed", [True, False])
def test_the_vote_answer_is_rendered_as_the_json_renderer_renders_it(
    voted_at: datetime, changed: bool
) -> None:
    result = VoteResult([3, 1, 2], voted_at, created=not changed, changed=changed)
    assert _vote_rendered(7, result).encode() == JSONRenderer().render(_vote_body(7, result))
