"""Votes (poll, ending) and quiz answers (SPEC §2.2: one per user, by database constraint).

A vote takes FOR KEY SHARE on the sticker row: voters do not block each other, and closing
(FOR UPDATE) waits for votes in flight, so no vote lands after a sticker was finalized.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.client import ClientInfo
from core.db import fetch_prepared, insert_ignoring_conflict
from core.exceptions import Conflict, InvalidInput, NotFound
from core.idempotency import (
    ANSWERED_SQL,
    AnswerOnRecord,
    InStatementAnswer,
    answer_record_sql,
    idempotency_forget_expired,
    is_key_taken,
)
from core.wakeups import wake
from engagement.models import User
from polls.metrics import VOTES
from polls.models import Answer, Checkpoint, CheckpointOption, Sticker, StickerOption, Vote
from polls.services.tally import VOTABLE, tally_request
from polls.state import TERMINAL, effective_state


@dataclass(frozen=True)
class VoteResult:
    """The user's vote after the request: its choice and when it was made."""

    option_ids: list[int]
    voted_at: datetime
    created: bool
    changed: bool
    # The request's answer was recorded by the vote's own statement (see vote_cast).
    recorded: bool = False


@dataclass(frozen=True)
class _StickerRow:
    id: int
    kind: str
    state: str
    opens_at: datetime
    closes_at: datetime | None
    max_choices: int
    allow_vote_change: bool
    option_ids: list[int]


def _sticker_key_share(sticker_id: int) -> _StickerRow:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.id, s.kind, s.state, s.opens_at, s.closes_at, s.max_choices, "
            f"s.allow_vote_change, ARRAY(SELECT o.id FROM {StickerOption._meta.db_table} o "
            f"WHERE o.sticker_id = s.id) "
            f"FROM {Sticker._meta.db_table} s WHERE s.id = %s FOR KEY SHARE",
            [sticker_id],
        )
        row = cursor.fetchone()
    if row is None or row[2] == Sticker.State.MODERATED:
        raise NotFound("No sticker with this id.")
    return _StickerRow(*row)


def _check_open(sticker: _StickerRow, now: datetime) -> None:
    state = effective_state(
        state=sticker.state, opens_at=sticker.opens_at, closes_at=sticker.closes_at, now=now
    )
    if state != Sticker.State.OPEN:
        raise Conflict(f"The sticker is {state}, not open.", code="sticker_not_open")


def _check_choices(option_ids: list[int], allowed: set[int], max_choices: int) -> None:
    if not option_ids:
        raise InvalidInput(
            "Invalid input: option_ids: choose at least one option.",
            code="invalid",
            errors={"option_ids": ["Choose at least one option."]},
        )
    if len(set(option_ids)) != len(option_ids):
        raise InvalidInput(
            "Invalid input: option_ids: an option is listed twice.",
            code="duplicate_options",
            errors={"option_ids": ["An option is listed twice."]},
        )
    if len(option_ids) > max_choices:
        raise InvalidInput(
            f"Invalid input: option_ids: choose at most {max_choices}.",
            code="too_many_options",
            errors={"option_ids": [f"Choose at most {max_choices} option(s)."]},
        )
    foreign = [option_id for option_id in option_ids if option_id not in allowed]
    if foreign:
        raise InvalidInput(
            "Invalid input: option_ids: not options of this sticker.",
            code="foreign_option",
            errors={"option_ids": [f"Not options of this sticker: {foreign}."]},
        )


def vote_cast(
    *,
    user: User,
    sticker_id: int,
    option_ids: list[int],
    client: ClientInfo,
    answer: InStatementAnswer | None = None,
    tally_marked: bool = False,
) -> VoteResult:
    """Cast or change the user's vote.

    One statement reads the sticker (FOR KEY SHARE), writes the vote only when every rule holds,
    and returns what was written; so a vote is a single round trip, atomic by itself, with no
    transaction or savepoint of its own. The SQL condition is the conjunction of the rules that
    `_check_choices` and `_check_open` state; when it refused, the statement returns the sticker
    and those checks run on it, in the order that picks the error to report.

    With `answer` (a request's Idempotency-Key), the same statement records the answer when it
    writes the vote, and writes nothing when the key already has an answer (AnswerOnRecord).
    `tally_marked`: the caller marked the sticker's live tally dirty already (the API does, on
    the throttle's round trip); otherwise a written vote marks it after commit.
    """
    now = timezone.now()
    chosen = sorted(option_ids)
    params: dict[str, Any] = {
        "sticker": sticker_id,
        "user": user.pk,
        "chosen": chosen,
        "now": now,
        "ip": client.ip,
        "device": client.device_id,
        "well_formed": bool(chosen) and len(set(chosen)) == len(chosen),
        **_NO_ANSWER,
    }
    if answer is not None:
        # The two answers a write can give, rendered before the statement that records one.
        params.update(
            answer.sql_params(),
            body_created=answer.render(VoteResult(chosen, now, created=True, changed=False)),
            body_changed=answer.render(VoteResult(chosen, now, created=False, changed=True)),
        )
    rows = _vote_statement(params, answer)
    answered, recorded, written_id, inserted, *row = rows[0]
    if answered:
        raise AnswerOnRecord
    if written_id is not None:
        # (in autocommit, on_commit runs now; in a caller's transaction, when it commits)
        transaction.on_commit(VOTES.inc)
        if not tally_marked:
            transaction.on_commit(lambda: tally_request(sticker_id=sticker_id))
        if inserted:
            wake("votes")
        return VoteResult(
            chosen, now, created=inserted, changed=not inserted, recorded=bool(recorded)
        )
    # Nothing was written: the sticker (returned only then) says which rule refused the vote.
    if row[0] is None:
        raise NotFound("No sticker with this id.")
    sticker = _StickerRow(*row)
    if sticker.state == Sticker.State.MODERATED:
        raise NotFound("No sticker with this id.")
    if sticker.kind not in VOTABLE:
        raise InvalidInput(f"A sticker of kind {sticker.kind} takes no votes.", code="not_votable")
    _check_choices(option_ids, set(sticker.option_ids), sticker.max_choices)
    _check_open(sticker, now)
    # The vote exists and was left alone: the same choice again, or changes are not allowed.
    before_ids, voted_at = (
        Vote.objects.filter(sticker_id=sticker_id, user=user)
        .values_list("option_ids", "voted_at")
        .get()
    )
    if sorted(before_ids) == chosen:
        return VoteResult(before_ids, voted_at, created=False, changed=False)
    raise Conflict("This sticker does not allow changing a vote.", code="vote_change_not_allowed")


def _vote_statement(
    params: dict[str, Any], answer: InStatementAnswer | None
) -> list[tuple[Any, ...]]:
    try:
        if answer is not None and connection.in_atomic_block:
            # (in a transaction, a statement failing on the key would abort it: a savepoint
            # keeps it usable; a request's vote runs in autocommit and needs none)
            with transaction.atomic():
                return fetch_prepared(_VOTE_SQL, params)
        return fetch_prepared(_VOTE_SQL, params)
    except IntegrityError as error:
        if answer is None or not is_key_taken(error):
            raise
        # The key got an answer after this statement's snapshot (a concurrent duplicate,
        # committed first), or holds an expired one the purge has not removed yet: the
        # statement failed as a whole, so nothing was written.
        if idempotency_forget_expired(answer.claim):
            return fetch_prepared(_VOTE_SQL, params)
        raise AnswerOnRecord from error


_VOTABLE = ", ".join(f"'{kind.value}'" for kind in VOTABLE)
_TERMINAL = ", ".join(f"'{state.value}'" for state in TERMINAL)
_NO_ANSWER = {
    "answer_user": None,
    "answer_key": None,
    "answer_fingerprint": None,
    "answer_cutoff": None,
    "body_created": None,
    "body_changed": None,
}
_VOTE_SQL = f"""
    WITH answered AS (
        SELECT {ANSWERED_SQL} AS yes
    ), s AS (
        SELECT s.id, s.kind, s.state, s.opens_at, s.closes_at, s.max_choices,
            s.allow_vote_change,
            ARRAY(SELECT o.id FROM {StickerOption._meta.db_table} o WHERE o.sticker_id = s.id)
                AS option_ids
        FROM {Sticker._meta.db_table} s
        WHERE s.id = %(sticker)s
        FOR KEY SHARE
    ), written AS (
        INSERT INTO {Vote._meta.db_table} AS vote
            (sticker_id, user_id, option_ids, created_at, voted_at, ip, device_id, counted)
        SELECT s.id, %(user)s, %(chosen)s::bigint[], %(now)s::timestamptz, %(now)s::timestamptz,
            %(ip)s::inet, %(device)s, true
        FROM s
        WHERE %(well_formed)s
            AND s.kind IN ({_VOTABLE})
            AND cardinality(%(chosen)s::bigint[]) <= s.max_choices
            AND %(chosen)s::bigint[] <@ s.option_ids
            AND s.state NOT IN ({_TERMINAL})
            AND s.opens_at <= %(now)s::timestamptz
            AND (s.closes_at IS NULL OR s.closes_at > %(now)s::timestamptz)
            AND NOT (SELECT yes FROM answered)
        -- a new vote, or a changed one when the sticker allows changes (`xmax = 0`: inserted)
        ON CONFLICT (sticker_id, user_id) DO UPDATE
            SET option_ids = EXCLUDED.option_ids, voted_at = EXCLUDED.voted_at,
                ip = EXCLUDED.ip, device_id = EXCLUDED.device_id
            WHERE (SELECT s.allow_vote_change FROM s) AND vote.option_ids <> EXCLUDED.option_ids
        RETURNING id, xmax = 0 AS inserted
    ), recorded AS ({
    answer_record_sql(
        source="written",
        status="CASE WHEN written.inserted THEN 201 ELSE 200 END",
        body="CASE WHEN written.inserted THEN %(body_created)s::text "
        "ELSE %(body_changed)s::text END",
        when="true",
    )
})
    SELECT (SELECT yes FROM answered), EXISTS (SELECT FROM recorded),
        written.id, written.inserted,
        s.id, s.kind, s.state, s.opens_at, s.closes_at, s.max_choices, s.allow_vote_change,
        s.option_ids
    FROM (SELECT) AS one
    LEFT JOIN written ON true
    LEFT JOIN s ON written.id IS NULL  -- (the sticker is read back only to explain a refusal)
"""


@dataclass(frozen=True)
class Progress:
    answered: int
    total: int
    correct: int
    completed: bool


@dataclass(frozen=True)
class AnswerResult:
    answer: Answer
    correct_option_ids: list[int]
    explanation: str
    progress: Progress


def quiz_progress(*, user: User, sticker_id: int) -> Progress:
    total = Checkpoint.objects.filter(sticker_id=sticker_id).count()
    answers = list(
        Answer.objects.filter(sticker_id=sticker_id, user=user).values_list("is_correct", flat=True)
    )
    return Progress(
        answered=len(answers),
        total=total,
        correct=sum(1 for correct in answers if correct),
        completed=total > 0 and len(answers) >= total,
    )


@transaction.atomic
def answer_submit(
    *, user: User, sticker_id: int, checkpoint_id: int, option_ids: list[int], client: ClientInfo
) -> AnswerResult:
    sticker = _sticker_key_share(sticker_id)
    checkpoint = Checkpoint.objects.filter(pk=checkpoint_id, sticker_id=sticker_id).first()
    if checkpoint is None:
        raise NotFound("No checkpoint with this id on this sticker.")
    options = list(
        CheckpointOption.objects.filter(checkpoint=checkpoint).values_list("id", "is_correct")
    )
    allowed = {option_id for option_id, _ in options}
    correct_ids = sorted(option_id for option_id, is_correct in options if is_correct)
    _check_choices(option_ids, allowed, len(allowed))
    _check_open(sticker, timezone.now())
    chosen = sorted(option_ids)
    is_correct = chosen == correct_ids
    new_id = insert_ignoring_conflict(
        Answer,
        {
            "sticker": sticker_id,
            "checkpoint": checkpoint_id,
            "user": user.pk,
            "option_ids": chosen,
            "is_correct": is_correct,
            "created_at": timezone.now(),
            "ip": client.ip,
            "device_id": client.device_id,
            "counted": True,
        },
        ["checkpoint", "user"],
    )
    if new_id is None:
        raise Conflict("You already answered this checkpoint.", code="already_answered")
    wake("votes")
    return AnswerResult(
        answer=Answer.objects.get(pk=new_id),
        correct_option_ids=correct_ids,
        explanation=checkpoint.explanation,
        progress=quiz_progress(user=user, sticker_id=sticker_id),
    )
