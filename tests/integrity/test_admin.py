"""The case admin (SPEC §4): list, filters, a case's page, the confirm and dismiss actions with
their note, and a user's integrity history."""

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from engagement.models import Like
from integrity.models import Case, CaseDecision
from integrity.services.cases import AccountSpan, Finding, case_open
from tests.factories import StaffUserFactory, UserFactory
from tests.integrity.farm import World, build_world, counts, span

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/integrity/case/"


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(StaffUserFactory.create())
    return client


def _listed(response: Any) -> list[int]:
    assert response.status_code == 200
    return sorted(case.pk for case in response.context["cl"].result_list)


def _small_case(setting: World, fingerprint: str) -> Case:
    start, end = span(setting.now)
    case = case_open(
        finding=Finding(
            accounts=[AccountSpan(setting.bots[0].pk, start, end)],
            score=0.5,
            fingerprint=fingerprint,
        )
    ).case
    assert case is not None
    return case


def test_the_list_filters_by_status_signal_kind_size_and_account(staff_client: Client) -> None:
    setting = build_world()
    farm = case_open(finding=setting.finding()).case
    small = _small_case(setting, "velocity:1")
    assert farm is not None

    assert _listed(staff_client.get(CHANGELIST)) == sorted([farm.pk, small.pk])
    assert _listed(staff_client.get(CHANGELIST + "?signal=lockstep")) == [farm.pk]
    assert _listed(staff_client.get(CHANGELIST + "?size=1")) == [small.pk]
    assert _listed(staff_client.get(CHANGELIST + "?size=2-9")) == [farm.pk]
    assert _listed(staff_client.get(CHANGELIST + "?status__exact=confirmed")) == []
    hijacked = f"?account={setting.hijacked.pk}"
    assert _listed(staff_client.get(CHANGELIST + hijacked)) == [farm.pk]
    assert _listed(staff_client.get(CHANGELIST + f"?account={UserFactory.create().pk}")) == []


def test_a_case_page_shows_accounts_signals_and_evidence(staff_client: Client) -> None:
    setting = build_world()
    case = case_open(finding=setting.finding()).case
    assert case is not None

    response = staff_client.get(f"{CHANGELIST}{case.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    for user in [*setting.bots, setting.hijacked]:
        assert user.username in html
    assert "lockstep" in html and "window_seconds" in html and "farm-device" in html
    assert "Rows held (uncounted by this case)" in html


def test_confirm_asks_for_a_note_then_confirms(staff_client: Client) -> None:
    setting = build_world()
    case = case_open(finding=setting.finding()).case
    assert case is not None
    post = {"action": "confirm_cases", ACTION_CHECKBOX_NAME: [case.pk]}

    # the action first shows the confirmation page, changing nothing
    page = staff_client.post(CHANGELIST, post)
    assert page.status_code == 200
    assert "Confirm cases" in page.content.decode() and 'name="note"' in page.content.decode()
    # without a note it is shown again with the error
    refused = staff_client.post(CHANGELIST, {**post, "apply": "Confirm", "note": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert Like.objects.filter(counted=False).count() == 0

    # with a note, the case is confirmed by the service
    done = staff_client.post(
        CHANGELIST, {**post, "apply": "Confirm", "note": "same device"}, follow=True
    )

    assert done.status_code == 200
    assert "Confirmed 1 case: 24 rows flipped" in done.content.decode()
    case.refresh_from_db()
    assert (case.status, case.note) == (Case.Status.CONFIRMED, "same device")
    assert counts(setting)["videos"]["likes"] == [3, 2, 1]
    decision = CaseDecision.objects.get(case=case)
    assert (decision.action, decision.note, decision.auto) == ("confirm", "same device", False)
    assert decision.by is not None and decision.by.is_staff


def test_dismiss_action_restores(staff_client: Client) -> None:
    setting = build_world()
    likes = counts(setting)["videos"]["likes"]
    case = case_open(finding=setting.finding(), auto_confirm=True).case
    assert case is not None
    post = {"action": "dismiss_cases", ACTION_CHECKBOX_NAME: [case.pk]}

    done = staff_client.post(
        CHANGELIST, {**post, "apply": "Dismiss", "note": "a household"}, follow=True
    )

    assert "Dismissed 1 case: 24 rows flipped" in done.content.decode()
    case.refresh_from_db()
    assert case.status == Case.Status.DISMISSED
    assert counts(setting)["videos"]["likes"] == likes
    # dismissing again changes nothing
    again = staff_client.post(CHANGELIST, {**post, "apply": "Dismiss", "note": "x"}, follow=True)
    assert "already dismissed" in again.content.decode()


def test_the_user_page_links_the_integrity_history(staff_client: Client) -> None:
    setting = build_world()
    case = case_open(finding=setting.finding()).case
    assert case is not None

    page = staff_client.get(f"/admin/engagement/user/{setting.hijacked.pk}/change/")
    clean = staff_client.get(f"/admin/engagement/user/{setting.genuine[0].pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert f"/admin/integrity/case/{case.pk}/change/" in html
    assert f"/admin/integrity/case/?account={setting.hijacked.pk}" in html
    assert "In no integrity case." in clean.content.decode()


def test_other_integrity_pages_answer(staff_client: Client) -> None:
    setting = build_world()
    case = case_open(finding=setting.finding(), auto_confirm=True).case
    assert case is not None
    for url in (
        "/admin/integrity/signal/",
        "/admin/integrity/casedecision/",
        "/admin/integrity/caseflip/",
        f"/admin/integrity/signal/{case.signals.get().pk}/change/",
    ):
        assert staff_client.get(url).status_code == 200, url
