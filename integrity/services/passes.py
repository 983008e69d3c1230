"""The detection passes (SPEC §5 "Jobs"): read a window of likes into columns, run the
detection, and turn each finding into a case (docs/integrity.md, "Passes").

- the light pass (`integrity.tasks.integrity_light_pass`, every INTEGRITY_LIGHT_PASS_SECONDS)
  reads the last INTEGRITY_LIGHT_WINDOW_HOURS, so an attack in progress is discounted within
  minutes of its third target;
- the full pass (`integrity.tasks.integrity_full_pass`, nightly) reads the last
  INTEGRITY_FULL_WINDOW_DAYS (28).

A finding whose behaviour and an independent kind of evidence agree opens a case confirmed at
once (automatically); a finding with behaviour alone opens a case for staff. A finding met again
meets its case (its fingerprint: the kind and the accounts), and a dismissed one is not reopened
without new evidence (`case_open`). One pass at a time (an advisory lock); memory is the
window's likes as columns plus the detection's work arrays (docs/integrity.md, "Scale").
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from core.eventlog import consumer_lock
from integrity.detection import Finding as Detected
from integrity.detection import distinct, findings
from integrity.detection.cells import CELL_SECONDS, SECOND
from integrity.detection.load import events_from_likes
from integrity.services.cases import (
    AccountSpan,
    Finding,
    OpenOutcome,
    SignalInput,
    case_open,
    fingerprint_of,
)

logger = logging.getLogger(__name__)

PASS_LOCK = "integrity-pass"
# An account's span reaches a window before its first and after its last like in the group's
# shared cells (the likes around an order belong to it).
SPAN_MARGIN = timedelta(seconds=CELL_SECONDS)


@dataclass
class PassReport:
    ran: bool = False
    likes: int = 0
    findings: int = 0
    opened: int = 0
    confirmed: int = 0
    existing: int = 0
    refused: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _at(microseconds: int) -> datetime:
    return datetime.fromtimestamp(microseconds / SECOND, tz=UTC)


def _case_finding(detected: Detected, user_ids: list[int]) -> Finding:
    group = detected.group
    members = [user_ids[code] for code in group.members.tolist()]
    accounts = [
        AccountSpan(
            user_id=user,
            span_start=_at(first) - SPAN_MARGIN,
            span_end=_at(last) + SPAN_MARGIN,
        )
        for user, first, last in zip(
            members, group.first_us.tolist(), group.last_us.tolist(), strict=True
        )
    ]
    figures = {
        "accounts": sorted(members),
        "videos": group.videos.tolist(),
        "shared_cells": group.shared_cells,
        "participation": round(group.participation, 4),
        "lift": round(group.lift, 2),
        "contrast": round(group.contrast, 4),
        "spread_s": round(group.spread_s, 1),
        "outside_share": round(group.outside_share, 4),
    }
    signals = [
        SignalInput(kind=kind, score=round(score, 4), evidence=figures)
        for kind, score in sorted(detected.evidence.items())
    ]
    burst = group.source == "burst"
    return Finding(
        accounts=accounts,
        score=round(detected.score, 6),
        fingerprint=fingerprint_of(kind="fresh_burst" if burst else "lockstep", keys=members),
        signals=signals,
        note=(
            f"{len(members)} accounts with almost no history burst on one video"
            if burst
            else f"{len(members)} accounts in lockstep on {len(figures['videos'])} videos"
        ),
    )


def integrity_pass(*, window: timedelta, now: datetime | None = None) -> PassReport:
    """One pass over the likes of [now - window, now)."""
    report = PassReport()
    until = now or timezone.now()
    with consumer_lock(PASS_LOCK) as taken:
        if not taken:
            return report
        report.ran = True
        started = time.perf_counter()
        events = events_from_likes(since=until - window, until=until)
        report.likes = len(events)
        report.seconds["load"] = time.perf_counter() - started
        mark = time.perf_counter()
        found = distinct(findings(events), events.users)
        report.findings = len(found)
        report.seconds["detect"] = time.perf_counter() - mark
        mark = time.perf_counter()
        user_ids = [int(user) for user in events.user_ids]
        for detected in found:
            if not (detected.flagged or detected.for_review):
                continue  # a weak co-liking group: a finding, not a case
            result = case_open(
                finding=_case_finding(detected, user_ids), auto_confirm=detected.flagged
            )
            if result.outcome in (OpenOutcome.OPENED, OpenOutcome.REOPENED):
                report.opened += 1
                report.confirmed += int(detected.flagged)
            elif result.outcome == OpenOutcome.EXISTING:
                report.existing += 1
            else:
                report.refused += 1
        report.seconds["cases"] = time.perf_counter() - mark
    logger.info(
        "integrity pass",
        extra={
            "window_s": window.total_seconds(),
            "likes": report.likes,
            "findings": report.findings,
            "opened": report.opened,
            "confirmed": report.confirmed,
            "existing": report.existing,
            "refused": report.refused,
            "seconds": {name: round(value, 3) for name, value in report.seconds.items()},
        },
    )
    return report


def integrity_light_pass() -> PassReport:
    return integrity_pass(window=timedelta(hours=settings.INTEGRITY_LIGHT_WINDOW_HOURS))


def integrity_full_pass() -> PassReport:
    return integrity_pass(window=timedelta(days=settings.INTEGRITY_FULL_WINDOW_DAYS))
