"""Cases: opening one from a finding, confirming it, dismissing it (SPEC §5, docs/integrity.md).

Decisions are set-based: the rows a case covers are staged by one INSERT … SELECT per table
into a temporary table, then flipped CHUNK ids at a time through the lower apps' services
(engagement.services.counted, polls.services.counted), which recount what each chunk touches
(video counters, comment like counts, sticker tallies and final results) and record each flip
for the analytics consumers. Rewards follow the flip (rewards.services.reassess). Everything
of one decision is one transaction; decisions run one at a time (an advisory lock), so the
"which other confirmed case covers this row" question of a dismissal sees settled cases.
"""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from engagement.models import User
from integrity.locks import case_for_decision, finding_lock
from integrity.models import Case, CaseAccount, CaseDecision, CaseFlip, Signal
from integrity.services.rows import (
    STAGED,
    TABLES,
    FlipTotals,
    affected_users,
    comment_pick_recount,
    covered,
    rows_flip,
    staged_chunks,
    staged_create,
)
from rewards.services.reassess import grants_qualification_snapshot, grants_reassess

_CASE = Case._meta.db_table
_ACCOUNT = CaseAccount._meta.db_table
_FLIP = CaseFlip._meta.db_table


# --- opening ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountSpan:
    user_id: int
    span_start: datetime
    span_end: datetime


@dataclass(frozen=True)
class SignalInput:
    kind: str
    score: float
    evidence: dict[str, Any]
    account_id: int | None = None


@dataclass(frozen=True)
class Finding:
    """What detection hands over: the accounts with their spans, the signals with their
    evidence, a score, and a fingerprint naming the finding across passes."""

    accounts: Sequence[AccountSpan]
    score: float
    fingerprint: str
    signals: Sequence[SignalInput] = ()
    # Signals stored earlier without a case (reports) that this finding groups.
    signal_ids: Sequence[int] = ()
    note: str = ""


class OpenOutcome:
    OPENED = "opened"
    REOPENED = "reopened"  # a dismissed finding came back with new evidence
    EXISTING = "existing"  # an open or confirmed case of this finding exists: nothing new
    REFUSED = "refused"  # dismissed before, and nothing new: the dismissal sticks


@dataclass(frozen=True)
class OpenResult:
    case: Case | None
    outcome: str
    decision: "DecisionResult | None" = None


def fingerprint_of(*, kind: str, keys: Iterable[object]) -> str:
    """A stable fingerprint for a finding: its kind and its sorted keys (account ids, video ids…),
    hashed. Detection may use it or bring its own."""
    text = kind + ":" + ",".join(sorted(str(key) for key in keys))
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def _check_finding(finding: Finding) -> None:
    if not finding.fingerprint:
        raise ValueError("a finding needs a fingerprint")
    if not finding.accounts:
        raise ValueError("a finding needs at least one account")
    users = [account.user_id for account in finding.accounts]
    if len(set(users)) != len(users):
        raise ValueError("each account appears once in a finding")
    if any(account.span_end <= account.span_start for account in finding.accounts):
        raise ValueError("an account's span must end after it starts")


def _finding_params(finding: Finding) -> dict[str, Any]:
    return {
        "users": [account.user_id for account in finding.accounts],
        "starts": [account.span_start for account in finding.accounts],
        "ends": [account.span_end for account in finding.accounts],
        "fingerprint": finding.fingerprint,
        "dismissed": Case.Status.DISMISSED.value,
    }


_FINDING = (
    "finding AS (SELECT * FROM unnest(%(users)s::bigint[], %(starts)s::timestamptz[], "
    "%(ends)s::timestamptz[]) AS f(user_id, span_start, span_end))"
)


def _has_new_evidence(finding: Finding) -> bool:
    """The rule (docs/integrity.md, "Dismissal sticks"): against the dismissed cases of the same
    fingerprint, a finding is new evidence when it names an account none of them had, or covers
    an interaction (any of the eight tables) that none of their account spans covered. One
    statement."""
    rows_outside = " OR ".join(
        f"EXISTS (SELECT 1 FROM {table.name} t JOIN finding f ON {covered(table, 't', 'f')} "
        f"WHERE NOT EXISTS (SELECT 1 FROM dismissed d WHERE {covered(table, 't', 'd')}))"
        for table in TABLES.values()
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH {_FINDING},
            dismissed AS (
                SELECT ca.user_id, ca.span_start, ca.span_end
                FROM {_ACCOUNT} ca JOIN {_CASE} c ON c.id = ca.case_id
                WHERE c.fingerprint = %(fingerprint)s AND c.status = %(dismissed)s
            )
            SELECT EXISTS (
                SELECT 1 FROM finding f
                WHERE NOT EXISTS (SELECT 1 FROM dismissed d WHERE d.user_id = f.user_id)
            ) OR {rows_outside}
            """,
            _finding_params(finding),
        )
        return bool(cursor.fetchone()[0])


def _interactions_in_spans(finding: Finding) -> int:
    total = " + ".join(
        f"(SELECT count(*) FROM {table.name} t JOIN finding f ON {covered(table, 't', 'f')})"
        for table in TABLES.values()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {_FINDING} SELECT {total}", _finding_params(finding))
        return int(cursor.fetchone()[0])


@transaction.atomic
def case_open(*, finding: Finding, auto_confirm: bool = False) -> OpenResult:
    """Open a case for a finding, unless the finding already has one or was dismissed without
    new evidence since. With `auto_confirm` (evidence strong on independent grounds, decided by
    detection) the new case is confirmed at once, as an automatic decision."""
    _check_finding(finding)
    # Two passes meeting the same finding at once: one case.
    finding_lock(finding.fingerprint)
    same = Case.objects.filter(fingerprint=finding.fingerprint)
    existing = same.exclude(status=Case.Status.DISMISSED).order_by("-pk").first()
    if existing is not None:
        return OpenResult(case=existing, outcome=OpenOutcome.EXISTING)
    last_dismissed = same.filter(status=Case.Status.DISMISSED).order_by("-pk").first()
    if last_dismissed is not None and not _has_new_evidence(finding):
        return OpenResult(case=None, outcome=OpenOutcome.REFUSED)
    case = Case.objects.create(
        status=Case.Status.OPEN,
        score=finding.score,
        span_start=min(account.span_start for account in finding.accounts),
        span_end=max(account.span_end for account in finding.accounts),
        fingerprint=finding.fingerprint,
        reopens=last_dismissed,
        note=finding.note,
        account_count=len(finding.accounts),
        interaction_count=_interactions_in_spans(finding),
    )
    CaseAccount.objects.bulk_create(
        CaseAccount(
            case=case,
            user_id=account.user_id,
            span_start=account.span_start,
            span_end=account.span_end,
        )
        for account in sorted(finding.accounts, key=lambda account: account.user_id)
    )
    Signal.objects.bulk_create(
        Signal(
            case=case,
            kind=signal.kind,
            score=signal.score,
            evidence=signal.evidence,
            account_id=signal.account_id,
        )
        for signal in finding.signals
    )
    if finding.signal_ids:
        Signal.objects.filter(pk__in=finding.signal_ids, case__isnull=True).update(case=case)
    outcome = OpenOutcome.REOPENED if last_dismissed is not None else OpenOutcome.OPENED
    decision = case_confirm(case, auto=True) if auto_confirm else None
    if decision is not None:
        case = decision.case
    return OpenResult(case=case, outcome=outcome, decision=decision)


# --- decisions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DecisionResult:
    case: Case
    # False: the case was already in the requested state; nothing was done or logged.
    changed: bool
    rows_flipped: int = 0
    rows_handed_over: int = 0
    grants_revoked: list[int] = field(default_factory=list)
    grants_restored: list[int] = field(default_factory=list)
    grants_granted: int = 0


def _stage_covered_counted(case: Case) -> None:
    """Every counted row the case's accounts made inside their spans: one statement a table."""
    with connection.cursor() as cursor:
        for kind, table in TABLES.items():
            cursor.execute(
                f"""
                INSERT INTO {STAGED} (kind, id)
                SELECT %(kind)s, t.id FROM {table.name} t
                JOIN {_ACCOUNT} ca ON {covered(table, "t", "ca")}
                WHERE ca.case_id = %(case)s AND t.counted
                ON CONFLICT DO NOTHING
                """,
                {"kind": kind, "case": case.pk},
            )


def _record_flips(case: Case, kind: str, ids: list[int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_FLIP} (case_id, kind, row_id, flipped_at, released_at)
            SELECT %(case)s, %(kind)s, row_id, now(), NULL FROM unnest(%(ids)s::bigint[]) row_id
            ON CONFLICT (case_id, kind, row_id)
            DO UPDATE SET flipped_at = EXCLUDED.flipped_at, released_at = NULL
            """,
            {"case": case.pk, "kind": kind, "ids": ids},
        )


def _flip_staged(counted: bool, on_chunk: Any = None) -> FlipTotals:
    totals = FlipTotals()
    for kind in TABLES:
        for ids in staged_chunks(kind):
            rows_flip(kind=kind, ids=ids, counted=counted, totals=totals)
            if on_chunk is not None:
                on_chunk(kind, ids)
    comment_pick_recount(totals)
    return totals


def _staged_any() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {STAGED})")
        return bool(cursor.fetchone()[0])


def _decided(
    case: Case,
    *,
    keep_case: bool = False,
    action: str,
    status: str,
    by: User | None,
    note: str,
    auto: bool,
    totals: FlipTotals | None = None,
    handed_over: int = 0,
    revoked: Sequence[int] = (),
    restored: Sequence[int] = (),
    granted: int = 0,
) -> DecisionResult:
    now = timezone.now()
    if not keep_case:
        case.status = status
        case.decided_at = now
        case.decided_by = by
        if action == CaseDecision.Action.CONFIRM:
            case.auto_confirmed = auto
        if note:
            case.note = note
        case.save(update_fields=["status", "decided_at", "decided_by", "auto_confirmed", "note"])
    flipped = totals.flipped if totals is not None else 0
    CaseDecision.objects.create(
        case=case,
        action=action,
        by=by,
        note=note,
        at=now,
        auto=auto,
        rows_flipped=flipped,
        rows_handed_over=handed_over,
        grants_revoked=len(revoked),
        grants_restored=len(restored),
        grants_granted=granted,
    )
    return DecisionResult(
        case=case,
        changed=True,
        rows_flipped=flipped,
        rows_handed_over=handed_over,
        grants_revoked=list(revoked),
        grants_restored=list(restored),
        grants_granted=granted,
    )


@transaction.atomic
def case_confirm(
    case: Case | int, *, by: User | None = None, note: str = "", auto: bool = False
) -> DecisionResult:
    """Confirm: every counted row the case's accounts made inside their spans (likes, comment
    likes, comments, shares, plays, follows, votes, quiz answers) stops counting, everything
    they touch is recounted, and rewards follow. The rows are recorded as the case's CaseFlips.

    Confirming a confirmed case flips only covered rows that still count — rows its accounts
    made inside their spans since (an attack in progress), logged as one more decision without
    changing who decided the case — and otherwise does nothing (`changed=False`, nothing
    logged)."""
    if auto and by is not None:
        raise ValueError("an automatic decision has no staff member")
    case = case_for_decision(case)
    staged_create()
    _stage_covered_counted(case)
    already = case.status == Case.Status.CONFIRMED
    if already and not _staged_any():
        return DecisionResult(case=case, changed=False)
    users = affected_users()
    grants_qualification_snapshot(user_ids=users)
    totals = _flip_staged(False, lambda kind, ids: _record_flips(case, kind, ids))
    rewards = grants_reassess(user_ids=users, reason=f"integrity case {case.pk} confirmed")
    return _decided(
        case,
        keep_case=already,
        action=CaseDecision.Action.CONFIRM,
        status=Case.Status.CONFIRMED,
        by=by,
        note=note,
        auto=auto,
        totals=totals,
        revoked=rewards.revoked,
        restored=rewards.restored,
        granted=rewards.granted,
    )


def _hand_over_covered(case: Case) -> int:
    """Staged rows that another confirmed case covers stay uncounted: each is handed to the
    oldest such case (a CaseFlip of it, so its own dismissal flips it back) and unstaged."""
    handed = 0
    with connection.cursor() as cursor:
        for kind, table in TABLES.items():
            cursor.execute(
                f"""
                WITH holders AS (
                    SELECT s.id, min(ca.case_id) AS holder
                    FROM {STAGED} s
                    JOIN {table.name} t ON t.id = s.id
                    JOIN {_ACCOUNT} ca ON {covered(table, "t", "ca")}
                    JOIN {_CASE} c ON c.id = ca.case_id
                    WHERE s.kind = %(kind)s AND c.status = %(confirmed)s AND c.id <> %(case)s
                    GROUP BY s.id
                ),
                handed AS (
                    INSERT INTO {_FLIP} (case_id, kind, row_id, flipped_at, released_at)
                    SELECT holder, %(kind)s, id, now(), NULL FROM holders
                    ON CONFLICT (case_id, kind, row_id) DO UPDATE SET released_at = NULL
                )
                DELETE FROM {STAGED} s USING holders h WHERE s.kind = %(kind)s AND s.id = h.id
                """,
                {"kind": kind, "case": case.pk, "confirmed": Case.Status.CONFIRMED.value},
            )
            handed += cursor.rowcount
    return handed


@transaction.atomic
def case_dismiss(case: Case | int, *, by: User | None, note: str) -> DecisionResult:
    """Dismiss: the rows this case holds (its CaseFlips) count again and everything they touch
    is recounted, rewards following — except rows another confirmed case covers, which that case
    takes over and which stay uncounted. Works the same after an automatic confirmation; an open
    case is simply dismissed; dismissing a dismissed case does nothing."""
    case = case_for_decision(case)
    if case.status == Case.Status.DISMISSED:
        return DecisionResult(case=case, changed=False)
    if case.status == Case.Status.OPEN:
        return _decided(
            case,
            action=CaseDecision.Action.DISMISS,
            status=Case.Status.DISMISSED,
            by=by,
            note=note,
            auto=False,
        )
    staged_create()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {STAGED} (kind, id) SELECT kind, row_id FROM {_FLIP} "
            f"WHERE case_id = %s AND released_at IS NULL",
            [case.pk],
        )
    handed = _hand_over_covered(case)
    users = affected_users()
    grants_qualification_snapshot(user_ids=users)
    totals = _flip_staged(True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_FLIP} SET released_at = now() WHERE case_id = %s AND released_at IS NULL",
            [case.pk],
        )
    rewards = grants_reassess(user_ids=users, reason=f"integrity case {case.pk} dismissed")
    return _decided(
        case,
        action=CaseDecision.Action.DISMISS,
        status=Case.Status.DISMISSED,
        by=by,
        note=note,
        auto=False,
        totals=totals,
        handed_over=handed,
        revoked=rewards.revoked,
        restored=rewards.restored,
        granted=rewards.granted,
    )
