"""SPEC §2.2 for votes and answers under real concurrency: threads through the full API."""

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from engagement.models import User
from polls.models import Answer, Checkpoint, Sticker, StickerResult, Vote
from polls.services.finalizing import sticker_finalize
from polls.services.lifecycle import sticker_close
from polls.services.tallies import sticker_tally_refresh
from tests.factories import StickerFactory, UserFactory
from tests.polls import iso, option_ids

ClientMaker = Callable[..., APIClient]


def _run_concurrently(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Start `count` threads that wait on one barrier, then each calls action(index)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = action(index)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


def _response(response: Any) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()


def _response_replayed(response: Any) -> tuple[int, dict[str, Any], bool]:
    return response.status_code, response.json(), response.has_header("Idempotent-Replayed")


@pytest.mark.django_db(transaction=True)
def test_40_voters_and_16_simultaneous_duplicates_count_exactly_40_votes(
    make_client: ClientMaker,
) -> None:
    # given a poll and 40 voters: 20 for A, 12 for B, 8 for C
    sticker = StickerFactory.create(options=["A", "B", "C"])
    a, b, c = option_ids(sticker)
    voters = UserFactory.create_batch(40)
    choices = [a] * 20 + [b] * 12 + [c] * 8
    requests = [(make_client(voter), choice) for voter, choice in zip(voters, choices, strict=True)]
    # and the first voter sends the same vote 16 more times, all at the same moment
    requests += [(make_client(voters[0]), a) for _ in range(16)]

    # when all 56 requests arrive together
    responses = _run_concurrently(
        len(requests),
        lambda index: _response(
            requests[index][0].post(
                f"/api/v1/stickers/{sticker.pk}/votes",
                {"option_ids": [requests[index][1]]},
                format="json",
            )
        ),
    )

    # then 40 votes were created; the duplicates found the first voter's vote, unchanged
    assert Counter(status for status, _ in responses) == {201: 40, 200: 16}
    first_voter = [body for _, body in [responses[0], *responses[40:]]]
    assert [(body["option_ids"], body["changed"]) for body in first_voter] == [([a], False)] * 17
    assert len({body["voted_at"] for body in first_voter}) == 1
    # and exactly 40 counted rows hold the right split
    assert Vote.objects.filter(sticker=sticker).count() == 40
    assert Vote.objects.filter(sticker=sticker, counted=True).count() == 40
    assert Vote.objects.filter(sticker=sticker, user=voters[0]).count() == 1
    split = Counter(
        option
        for (option,) in Vote.objects.filter(sticker=sticker).values_list("option_ids", flat=True)
    )
    assert split == {a: 20, b: 12, c: 8}

    # and the live tally counts them exactly
    tally = sticker_tally_refresh(sticker_id=sticker.pk)
    assert tally is not None
    assert tally["total_votes"] == 40
    assert [(entry["id"], entry["votes"]) for entry in tally["entries"]] == [
        (a, 20),
        (b, 12),
        (c, 8),
    ]

    # and so does the final result (a worker may finalize first; the result is the same)
    sticker_close(actor=sticker.video.creator, sticker_id=sticker.pk)
    sticker_finalize(sticker_id=sticker.pk)
    sticker.refresh_from_db()
    assert (sticker.state, sticker.total_votes, sticker.winner_option_id) == ("final", 40, a)
    assert list(
        StickerResult.objects.filter(sticker=sticker)
        .order_by("rank")
        .values_list("option_id", "votes")
    ) == [(a, 20), (b, 12), (c, 8)]


@pytest.mark.django_db(transaction=True)
def test_simultaneous_changes_by_one_voter_leave_one_consistent_vote(
    make_client: ClientMaker,
) -> None:
    # given a poll that does not allow changing a vote, and one user sending 12 votes at once,
    # alternating between A and B
    sticker = StickerFactory.create(options=["A", "B"], allow_vote_change=False)
    a, b = option_ids(sticker)
    user = UserFactory.create()
    requests = [(make_client(user), [a] if index % 2 == 0 else [b]) for index in range(12)]

    responses = _run_concurrently(
        12,
        lambda index: _response(
            requests[index][0].post(
                f"/api/v1/stickers/{sticker.pk}/votes",
                {"option_ids": requests[index][1]},
                format="json",
            )
        ),
    )

    # then one vote exists; the requests for the same choice saw it unchanged and the requests
    # for the other choice were refused
    (vote,) = Vote.objects.filter(sticker=sticker)
    kept = vote.option_ids
    other = [b] if kept == [a] else [a]
    statuses = Counter(
        (choice == kept, status)
        for (_, choice), (status, _) in zip(requests, responses, strict=True)
    )
    assert statuses == {(True, 201): 1, (True, 200): 5, (False, 409): 6}
    refused = [
        body for (_, choice), (_, body) in zip(requests, responses, strict=True) if choice == other
    ]
    assert {body["code"] for body in refused} == {"vote_change_not_allowed"}


@pytest.mark.django_db(transaction=True)
def test_closing_while_votes_arrive_counts_exactly_the_accepted_votes(
    make_client: ClientMaker,
) -> None:
    # given an open poll, 30 voters and its creator, all at the barrier together
    sticker = StickerFactory.create(options=["A", "B"])
    a, b = option_ids(sticker)
    voters = [make_client(UserFactory.create()) for _ in range(30)]
    creator = make_client(sticker.video.creator)

    def act(index: int) -> tuple[int, str | None]:
        if index == 30:
            response = creator.post(f"/api/v1/stickers/{sticker.pk}/close")
        else:
            response = voters[index].post(
                f"/api/v1/stickers/{sticker.pk}/votes",
                {"option_ids": [a if index % 3 else b]},
                format="json",
            )
        return response.status_code, response.json().get("code")

    outcomes = _run_concurrently(31, act)

    # then the close succeeded and every vote was either accepted before it or refused after
    assert outcomes[30] == (200, None)
    accepted = outcomes[:30].count((201, None))
    refused = outcomes[:30].count((409, "sticker_not_open"))
    assert accepted + refused == 30
    assert Vote.objects.filter(sticker=sticker).count() == accepted
    # and the final result counts exactly the accepted votes
    sticker_finalize(sticker_id=sticker.pk)
    sticker.refresh_from_db()
    assert (sticker.state, sticker.total_votes) == ("final", accepted)
    assert sum(StickerResult.objects.filter(sticker=sticker).values_list("votes", flat=True)) == (
        accepted
    )


@pytest.mark.django_db(transaction=True)
def test_simultaneous_answers_to_one_checkpoint_by_one_user_make_exactly_one_answer(
    make_client: ClientMaker,
) -> None:
    # given a quiz and one user with 16 clients
    sticker = StickerFactory.create(
        kind="quiz",
        checkpoints=[
            {"at_ms": 0, "question": "2 + 2?", "options": ["3", "4"], "correct": [1]},
            {"at_ms": 10, "question": "3 + 3?", "options": ["6", "7"], "correct": [0]},
        ],
    )
    checkpoint = Checkpoint.objects.get(sticker=sticker, position=0)
    three, four = checkpoint.options.order_by("position").values_list("id", flat=True)
    user = UserFactory.create()
    clients = [make_client(user) for _ in range(16)]

    # when all 16 answer the same checkpoint at once (half of them right, half wrong)
    responses = _run_concurrently(
        16,
        lambda index: _response(
            clients[index].post(
                f"/api/v1/stickers/{sticker.pk}/checkpoints/{checkpoint.pk}/answer",
                {"option_ids": [four if index % 2 else three]},
                format="json",
            )
        ),
    )

    # then exactly one answer was taken and the rest were told it was already answered
    assert Counter(status for status, _ in responses) == {201: 1, 409: 15}
    assert {body["code"] for status, body in responses if status == 409} == {"already_answered"}
    (created,) = [body for status, body in responses if status == 201]
    assert created["progress"] == {
        "answered": 1,
        "total": 2,
        "correct": int(created["correct"]),
        "completed": False,
    }
    (answer,) = Answer.objects.filter(checkpoint=checkpoint, user=user)
    assert answer.is_correct is created["correct"]
    assert answer.option_ids == ([four] if created["correct"] else [three])
    assert Sticker.objects.get(pk=sticker.pk).state == "open"


@pytest.mark.django_db(transaction=True)
def test_simultaneous_retries_with_one_idempotency_key_vote_once(
    make_client: ClientMaker,
) -> None:
    sticker = StickerFactory.create(options=["A", "B"])
    a, _b = option_ids(sticker)
    user = UserFactory.create()
    clients = [make_client(user) for _ in range(16)]

    responses = _run_concurrently(
        16,
        lambda index: _response_replayed(
            clients[index].post(
                f"/api/v1/stickers/{sticker.pk}/votes",
                {"option_ids": [a]},
                format="json",
                HTTP_IDEMPOTENCY_KEY="vote-once",
            )
        ),
    )

    # exactly one effect committed; every request got its answer (the others replayed it)
    assert [status for status, _, _ in responses] == [201] * 16
    assert all(body == responses[0][1] for _, body, _ in responses)
    assert sorted(replayed for _, _, replayed in responses) == [False] + [True] * 15
    (vote,) = Vote.objects.filter(sticker=sticker)
    assert (vote.user_id, vote.option_ids) == (user.pk, [a])


@pytest.mark.django_db(transaction=True)
def test_a_key_answered_while_the_vote_statement_waits_aborts_the_vote(
    make_client: ClientMaker,
) -> None:
    # given another request holding key "k" uncommitted (its answer not yet on record)
    user, client, sticker, a = _a_voter_and_a_poll(make_client)
    held = (
        "INSERT INTO core_idempotencyrecord (user_id, key, request_fingerprint, response_status,"
        " response_body, response_headers, created_at) VALUES (%s, 'k', 'other', 204, '', '{}',"
        " now())",
        [user.pk],
    )

    # when the vote's statement has to wait for that key, and the holder then commits
    responses = _vote_while_held(held, client, sticker, [a], HTTP_IDEMPOTENCY_KEY="k")

    # then the vote's statement failed as a whole: no vote; the key's owner is told apart
    assert [(status, body["code"]) for status, body in responses] == [
        (409, "idempotency_key_reused")
    ]
    assert not Vote.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_same_vote_committed_while_the_statement_waits_is_answered_as_unchanged(
    make_client: ClientMaker,
) -> None:
    # given another request's vote for A by the same user, uncommitted
    user, client, sticker, a = _a_voter_and_a_poll(make_client)
    held = (
        "INSERT INTO polls_vote (sticker_id, user_id, option_ids, created_at, voted_at, device_id,"
        " counted) VALUES (%s, %s, %s, now(), now(), '', true)",
        [sticker.pk, user.pk, [a]],
    )

    # when the same vote's statement waits on that row, and the holder then commits: the
    # statement's snapshot predates the row, so the vote it left alone is read afterwards
    responses = _vote_while_held(held, client, sticker, [a])

    # then it is answered as the same vote again, with the committed vote's time
    (vote,) = Vote.objects.filter(sticker=sticker)
    assert [(status, body["option_ids"], body["changed"]) for status, body in responses] == [
        (200, [a], False)
    ]
    assert responses[0][1]["voted_at"] == iso(vote.voted_at)


def _a_voter_and_a_poll(make_client: ClientMaker) -> tuple[User, APIClient, Sticker, int]:
    """A user with a client, and a poll of options A and B: (user, client, sticker, A's id)."""
    sticker = StickerFactory.create(options=["A", "B"])
    user = UserFactory.create()
    return user, make_client(user), sticker, option_ids(sticker)[0]


def _vote_while_held(
    held: tuple[str, list[Any]], client: APIClient, sticker: Sticker, ids: list[int], **headers: Any
) -> list[tuple[int, dict[str, Any]]]:
    """Run the `held` statement in a transaction of another connection, vote in a thread until
    the vote's statement waits for a lock, then commit the holder: the vote's (status, body)."""
    responses: list[tuple[int, dict[str, Any]]] = []

    def vote() -> None:
        try:
            response = client.post(
                f"/api/v1/stickers/{sticker.pk}/votes",
                {"option_ids": ids},
                format="json",
                **headers,
            )
            responses.append(_response(response))
        finally:
            connection.close()  # (the thread's own: the test database is dropped after)

    voter = threading.Thread(target=vote)
    holder = psycopg.connect(_dsn(), autocommit=False)
    try:
        holder.execute(*held)
        voter.start()
        _wait_until_a_backend_waits_for_a_lock()
        holder.commit()
        voter.join(timeout=30)
    finally:
        holder.close()
    assert not voter.is_alive()
    return responses


def _dsn() -> str:
    settings_dict = connection.settings_dict
    return (
        f"host={settings_dict['HOST']} port={settings_dict['PORT']} dbname={settings_dict['NAME']}"
        f" user={settings_dict['USER']} password={settings_dict['PASSWORD']}"
    )


def _wait_until_a_backend_waits_for_a_lock(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("no backend started waiting for a lock")
