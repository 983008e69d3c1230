"""Votes (poll, ending) and quiz answers (SPEC §2.2: one per user, by database constraint).

A vote or an answer takes FOR KEY SHARE on the sticker row (polls.locks): voters do not block
each other, and closing (FOR UPDATE) waits for votes in flight, so no vote lands after a sticker
was finalized.

The vote rules are written once, in `VOTE_RULES`: the vote's one statement writes only when all
of them hold and, when it refused, says which did not; Python never checks them again.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.client import ClientInfo
from core.db import fetch_prepared, insert_ignoring_conflict, sql_literals
from core.exceptions import Conflict, InvalidInput, NotFound, ServiceError
from core.idempotency import (
    NO_RECORD_PARAMS,
    RESPONSE_ON_RECORD_SQL,
    InStatementRecord,
    ResponseOnRecord,
    idempotency_forget_expired,
    is_key_taken,
    response_record_sql,
)
from core.wakeups import wake
from engagement.models import User
from polls.locks import STICKER_FOR_KEY_SHARE_SQL, sticker_for_key_share
from polls.metrics import VOTES
from polls.models import VOTABLE_KINDS, Answer, Checkpoint, CheckpointOption, Sticker, Vote
from polls.services.tallies import tally_refresh_schedule
from polls.state import ENDED, effective_state


@dataclass(frozen=True)
class VoteResult:
    """The user's vote after the request: its choice and when it was made."""

    option_ids: list[int]
    voted_at: datetime
    created: bool
    changed: bool
    # The request's response was recorded by the vote's own statement (see vote_cast).
    recorded: bool = False


@dataclass(frozen=True)
class _StickerRow:
    """The sticker row a vote or an answer is checked against (STICKER_FOR_KEY_SHARE_SQL)."""

    id: int
    kind: str
    state: str
    opens_at: datetime
    closes_at: datetime | None
    max_choices: int
    allow_vote_change: bool
    option_ids: list[int]


def _check_takes_part(sticker: _StickerRow) -> None:
    """A moderated sticker takes no votes or answers, not even its creator's: a 404 to all."""
    if sticker.state == Sticker.State.MODERATED:
        raise NotFound("No sticker with this id.")


def _sticker_key_share(sticker_id: int) -> _StickerRow:
    row = sticker_for_key_share(sticker_id)
    if row is None:
        raise NotFound("No sticker with this id.")
    sticker = _StickerRow(*row)
    _check_takes_part(sticker)
    return sticker


# The refusals of the rules on a choice of options, shared by votes and quiz answers.
def _no_option() -> InvalidInput:
    return InvalidInput(
        "Invalid input: option_ids: choose at least one option.",
        code="invalid",
        errors={"option_ids": ["Choose at least one option."]},
    )


def _duplicate_option() -> InvalidInput:
    return InvalidInput(
        "Invalid input: option_ids: an option is listed twice.",
        code="duplicate_options",
        errors={"option_ids": ["An option is listed twice."]},
    )


def _too_many_options(max_choices: int) -> InvalidInput:
    return InvalidInput(
        f"Invalid input: option_ids: choose at most {max_choices}.",
        code="too_many_options",
        errors={"option_ids": [f"Choose at most {max_choices} option(s)."]},
    )


def _foreign_options(option_ids: list[int], allowed: Sequence[int]) -> InvalidInput:
    allowed_ids = set(allowed)
    foreign = [option_id for option_id in option_ids if option_id not in allowed_ids]
    return InvalidInput(
        "Invalid input: option_ids: not options of this sticker.",
        code="foreign_option",
        errors={"option_ids": [f"Not options of this sticker: {foreign}."]},
    )


def _state_now(sticker: _StickerRow, now: datetime) -> str:
    return effective_state(
        state=sticker.state, opens_at=sticker.opens_at, closes_at=sticker.closes_at, now=now
    )


def _not_open(sticker: _StickerRow, now: datetime) -> Conflict:
    state = _state_now(sticker, now)
    return Conflict(f"The sticker is {state}, not open.", code="sticker_not_open")


def _check_open(sticker: _StickerRow, now: datetime) -> None:
    """The open rule of a quiz answer (a vote's is VOTE_RULES')."""
    if _state_now(sticker, now) != Sticker.State.OPEN:
        raise _not_open(sticker, now)


def _check_choices(option_ids: list[int], allowed: set[int], max_choices: int) -> None:
    """The choice rules of a quiz answer (a vote's are VOTE_RULES), in the same order."""
    if not option_ids:
        raise _no_option()
    if len(set(option_ids)) != len(option_ids):
        raise _duplicate_option()
    if len(option_ids) > max_choices:
        raise _too_many_options(max_choices)
    if any(option_id not in allowed for option_id in option_ids):
        raise _foreign_options(option_ids, sorted(allowed))


@dataclass(frozen=True)
class VoteRule:
    """A rule a vote must meet, written once: `holds` is SQL over the sticker row `s`
    (STICKER_FOR_KEY_SHARE_SQL) and the vote statement's parameters; `refusal` the error a vote
    that breaks it gets, from the sticker row, the option ids asked for and the vote's time."""

    name: str
    holds: str
    refusal: Callable[[_StickerRow, list[int], datetime], ServiceError]


# The vote rules (SPEC §2.2, §3), in the order that picks the error to report when several are
# broken. (`has_option` and `distinct_options` are computed from the request in `vote_cast`.)
VOTE_RULES = (
    VoteRule(
        "votable",
        f"s.kind IN ({sql_literals(VOTABLE_KINDS)})",
        lambda sticker, _ids, _now: InvalidInput(
            f"A sticker of kind {sticker.kind} takes no votes.", code="not_votable"
        ),
    ),
    VoteRule("has_option", "%(has_option)s", lambda _sticker, _ids, _now: _no_option()),
    VoteRule(
        "distinct_options", "%(distinct_options)s", lambda _sticker, _ids, _now: _duplicate_option()
    ),
    VoteRule(
        "within_max_choices",
        "cardinality(%(chosen)s::bigint[]) <= s.max_choices",
        lambda sticker, _ids, _now: _too_many_options(sticker.max_choices),
    ),
    VoteRule(
        "options_of_sticker",
        "%(chosen)s::bigint[] <@ s.option_ids",
        lambda sticker, ids, _now: _foreign_options(ids, sticker.option_ids),
    ),
    # Open at this instant: effective_state() would say open.
    VoteRule(
        "open",
        f"(s.state NOT IN ({sql_literals(ENDED)}) AND s.opens_at <= %(now)s::timestamptz "
        f"AND (s.closes_at IS NULL OR s.closes_at > %(now)s::timestamptz))",
        lambda sticker, _ids, now: _not_open(sticker, now),
    ),
)


def vote_cast(
    *,
    user: User,
    sticker_id: int,
    option_ids: list[int],
    client: ClientInfo,
    record: InStatementRecord | None = None,
    tally_marked: bool = False,
) -> VoteResult:
    """Cast or change the user's vote.

    One statement reads the sticker (FOR KEY SHARE), writes the vote only when every rule of
    VOTE_RULES holds, and returns what was written; so a vote is a single round trip, atomic by
    itself, with no transaction or savepoint of its own. When it refused, the statement returns
    the sticker and whether each rule held, and the first broken rule's refusal is raised; when
    every rule held but the vote was left alone (the same choice again), the vote as it is.

    With `record` (a request's Idempotency-Key), the same statement records the response when it
    writes the vote, and writes nothing when the key already has a recorded response
    (ResponseOnRecord). `tally_marked`: the caller marked the sticker's live tally dirty already
    (the API does, in the throttle's round trip); otherwise a written vote marks it after commit.
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
        "has_option": bool(chosen),
        "distinct_options": len(set(chosen)) == len(chosen),
        **_NO_RECORD,
    }
    if record is not None:
        # The two responses a write can give, rendered before the statement that records one.
        params.update(
            record.sql_params(),
            body_created=record.render(VoteResult(chosen, now, created=True, changed=False)),
            body_changed=record.render(VoteResult(chosen, now, created=False, changed=True)),
        )
    rows = _vote_statement(params, record)
    on_record, recorded, written_id, inserted, before_ids, before_voted_at, *row = rows[0]
    if on_record:
        raise ResponseOnRecord
    if written_id is not None:
        # (in autocommit, on_commit runs now; in a caller's transaction, when it commits)
        transaction.on_commit(VOTES.inc)
        if not tally_marked:
            transaction.on_commit(lambda: tally_refresh_schedule(sticker_id=sticker_id))
        if inserted:
            wake("votes")
        return VoteResult(
            chosen, now, created=inserted, changed=not inserted, recorded=bool(recorded)
        )
    # Nothing was written: the sticker (returned only then) says which rule refused the vote.
    sticker_row, held = row[: -len(VOTE_RULES)], row[-len(VOTE_RULES) :]
    if sticker_row[0] is None:
        raise NotFound("No sticker with this id.")
    sticker = _StickerRow(*sticker_row)
    _check_takes_part(sticker)
    for rule, holds in zip(VOTE_RULES, held, strict=True):
        if not holds:
            raise rule.refusal(sticker, option_ids, now)
    # The vote exists and was left alone: the same choice again, or changes are not allowed.
    if before_ids is None:  # (committed after the statement's snapshot: read now)
        before_ids, before_voted_at = (
            Vote.objects.filter(sticker_id=sticker_id, user=user)
            .values_list("option_ids", "voted_at")
            .get()
        )
    if sorted(before_ids) == chosen:
        return VoteResult(before_ids, before_voted_at, created=False, changed=False)
    raise Conflict("This sticker does not allow changing a vote.", code="vote_change_not_allowed")


def _vote_statement(
    params: dict[str, Any], record: InStatementRecord | None
) -> list[tuple[Any, ...]]:
    try:
        if record is not None and connection.in_atomic_block:
            # (in a transaction, a statement failing on the key would abort it: a savepoint
            # keeps it usable; a request's vote runs in autocommit and needs none)
            with transaction.atomic():
                return fetch_prepared(VOTE_SQL, params)
        return fetch_prepared(VOTE_SQL, params)
    except IntegrityError as error:
        if record is None or not is_key_taken(error):
            raise
        # The key got a recorded response after this statement's snapshot (a concurrent
        # duplicate, committed first), or holds an expired one the purge has not removed yet:
        # the statement failed as a whole, so nothing was written.
        if idempotency_forget_expired(record.key):
            return fetch_prepared(VOTE_SQL, params)
        raise ResponseOnRecord from error


_NO_RECORD = {**NO_RECORD_PARAMS, "body_created": None, "body_changed": None}
# A column of the user's vote on the sticker (by the unique key).
_VOTE_NOW_SQL = (
    f"SELECT v.{{column}} FROM {Vote._meta.db_table} v "
    f"WHERE v.sticker_id = %(sticker)s AND v.user_id = %(user)s"
)
# The vote, in one statement: the sticker read FOR KEY SHARE, the vote written when every rule
# holds and the key has no recorded response, the response recorded with it; then what was
# written, or (only when nothing was) the sticker, whether each rule held and the user's vote.
VOTE_SQL = f"""
    WITH on_record AS (
        SELECT {RESPONSE_ON_RECORD_SQL} AS yes
    ), s AS ({STICKER_FOR_KEY_SHARE_SQL}), written AS (
        INSERT INTO {Vote._meta.db_table} AS vote
            (sticker_id, user_id, option_ids, created_at, voted_at, ip, device_id, counted)
        SELECT s.id, %(user)s, %(chosen)s::bigint[], %(now)s::timestamptz, %(now)s::timestamptz,
            %(ip)s::inet, %(device)s, true
        FROM s
        WHERE {" AND ".join(rule.holds for rule in VOTE_RULES)}
            AND NOT (SELECT yes FROM on_record)
        -- a new vote, or a changed one when the sticker allows changes (`xmax = 0`: inserted)
        ON CONFLICT (sticker_id, user_id) DO UPDATE
            SET option_ids = EXCLUDED.option_ids, voted_at = EXCLUDED.voted_at,
                ip = EXCLUDED.ip, device_id = EXCLUDED.device_id
            WHERE (SELECT s.allow_vote_change FROM s) AND vote.option_ids <> EXCLUDED.option_ids
        RETURNING id, xmax = 0 AS inserted
    ), recorded AS ({
    response_record_sql(
        source="written",
        status="CASE WHEN written.inserted THEN 201 ELSE 200 END",
        body="CASE WHEN written.inserted THEN %(body_created)s::text "
        "ELSE %(body_changed)s::text END",
        when="true",
    )
})
    SELECT (SELECT yes FROM on_record), EXISTS (SELECT FROM recorded),
        written.id, written.inserted,
        -- the vote left alone, as the statement's snapshot has it (read only when nothing was
        -- written; one committed after the snapshot, which ON CONFLICT saw, is read afterwards)
        CASE WHEN written.id IS NULL THEN ({_VOTE_NOW_SQL.format(column="option_ids")}) END,
        CASE WHEN written.id IS NULL THEN ({_VOTE_NOW_SQL.format(column="voted_at")}) END,
        s.id, s.kind, s.state, s.opens_at, s.closes_at, s.max_choices, s.allow_vote_change,
        s.option_ids,
        {", ".join(f"{rule.holds} AS {rule.name}" for rule in VOTE_RULES)}
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

    @classmethod
    def of(cls, *, total: int, correct: Sequence[bool]) -> "Progress":
        """The progress through a quiz of `total` checkpoints, from whether each answer given
        was correct."""
        return cls(
            answered=len(correct),
            total=total,
            correct=sum(1 for is_correct in correct if is_correct),
            completed=total > 0 and len(correct) >= total,
        )


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
    return Progress.of(total=total, correct=answers)


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
