"""Opening cases from findings; a dismissal sticks unless new evidence comes (SPEC §5)."""

from datetime import timedelta

import pytest

from integrity.models import Case, CaseAccount, Signal
from integrity.services.cases import (
    AccountSpan,
    Finding,
    OpenOutcome,
    case_dismiss,
    case_open,
    fingerprint_of,
)
from tests.analytics import world
from tests.factories import UserFactory
from tests.integrity.farm import HOUR, World, build_world, span

pytestmark = pytest.mark.django_db


def _dismissed(setting: World) -> Case:
    case = case_open(finding=setting.finding()).case
    assert case is not None
    case_dismiss(case, by=None, note="a school trip")
    return case


def test_a_case_records_its_accounts_signals_and_sizes() -> None:
    setting = build_world()
    start, end = span(setting.now)

    opened = case_open(finding=setting.finding())

    case = opened.case
    assert case is not None and opened.outcome == OpenOutcome.OPENED
    assert (case.status, case.score, case.span_start, case.span_end) == ("open", 0.93, start, end)
    assert sorted(
        CaseAccount.objects.filter(case=case).values_list("user_id", flat=True)
    ) == sorted([*(bot.pk for bot in setting.bots), setting.hijacked.pk])
    signal = Signal.objects.get(case=case)
    assert (signal.kind, signal.score, signal.evidence["videos"]) == (
        "lockstep",
        0.93,
        [setting.v1.pk, setting.v2.pk],
    )
    # opening changes no count
    assert case.interaction_count == 24


def test_the_same_finding_while_its_case_is_open_is_the_same_case() -> None:
    setting = build_world()
    first = case_open(finding=setting.finding()).case

    again = case_open(finding=setting.finding())

    assert (again.outcome, again.case) == (OpenOutcome.EXISTING, first)
    assert Case.objects.count() == 1


def test_a_dismissed_finding_is_not_reopened_by_the_same_evidence() -> None:
    setting = build_world()
    _dismissed(setting)

    again = case_open(finding=setting.finding())

    assert (again.outcome, again.case) == (OpenOutcome.REFUSED, None)
    assert Case.objects.count() == 1
    # a narrower span over the same rows is no new evidence either
    start, end = span(setting.now)
    narrower = Finding(
        accounts=[AccountSpan(bot.pk, start + HOUR, end) for bot in setting.bots],
        score=0.99,
        fingerprint="lockstep:farm-1",
    )
    assert case_open(finding=narrower).outcome == OpenOutcome.REFUSED


def test_a_new_account_is_new_evidence() -> None:
    setting = build_world()
    dismissed = _dismissed(setting)
    start, end = span(setting.now)
    newcomer = UserFactory.create()
    finding = setting.finding()
    grown = Finding(
        accounts=[*finding.accounts, AccountSpan(newcomer.pk, start, end)],
        score=0.95,
        fingerprint=finding.fingerprint,
    )

    reopened = case_open(finding=grown)

    assert reopened.outcome == OpenOutcome.REOPENED
    assert reopened.case is not None and reopened.case.reopens == dismissed
    assert reopened.case.account_count == 5


def test_a_new_interaction_is_new_evidence() -> None:
    # given the dismissed finding, then the farm likes again after the dismissed span
    setting = build_world()
    _dismissed(setting)
    start, end = span(setting.now)
    later = end + HOUR
    world.like(setting.bots[1], setting.v3, later)
    finding = setting.finding()
    same_span_longer = Finding(
        accounts=[AccountSpan(a.user_id, start, later + HOUR) for a in finding.accounts],
        score=0.9,
        fingerprint=finding.fingerprint,
    )

    # when a pass finds it with a span covering the new like
    reopened = case_open(finding=same_span_longer)

    # then a new case opens; without that like the longer span would bring nothing new
    assert reopened.outcome == OpenOutcome.REOPENED
    assert reopened.case is not None and reopened.case.interaction_count == 25


def test_a_longer_span_without_new_rows_is_no_new_evidence() -> None:
    setting = build_world()
    _dismissed(setting)
    start, end = span(setting.now)
    finding = setting.finding()
    longer = Finding(
        accounts=[
            AccountSpan(a.user_id, start - timedelta(minutes=30), end + HOUR)
            for a in finding.accounts
        ],
        score=0.9,
        fingerprint=finding.fingerprint,
    )

    assert case_open(finding=longer).outcome == OpenOutcome.REFUSED


def test_findings_are_checked() -> None:
    setting = build_world()
    start, end = span(setting.now)
    bot = setting.bots[0]
    for bad in (
        Finding(accounts=[], score=1, fingerprint="x"),
        Finding(accounts=[AccountSpan(bot.pk, start, end)], score=1, fingerprint=""),
        Finding(accounts=[AccountSpan(bot.pk, end, start)], score=1, fingerprint="x"),
        Finding(
            accounts=[AccountSpan(bot.pk, start, end), AccountSpan(bot.pk, start, end)],
            score=1,
            fingerprint="x",
        ),
    ):
        with pytest.raises(ValueError):
            case_open(finding=bad)
    assert Case.objects.count() == 0


def test_fingerprints_do_not_depend_on_order() -> None:
    assert fingerprint_of(kind="lockstep", keys=[3, 1, 2]) == fingerprint_of(
        kind="lockstep", keys=[2, 3, 1]
    )
    assert fingerprint_of(kind="lockstep", keys=[1, 2]) != fingerprint_of(
        kind="lockstep", keys=[1, 2, 3]
    )
