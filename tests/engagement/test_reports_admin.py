"""Staff review of reports (SPEC §4 "handle user reports"): the review services, the report list
with its filters, search and review actions, and a user's reports on the user's page."""

import re
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.exceptions import InvalidInput
from engagement.models import Report, User
from engagement.services.reports import (
    ReviewResult,
    report_action,
    report_dismiss,
    reports_action,
    reports_dismiss,
)
from tests.conftest import database_state
from tests.factories import (
    CommentFactory,
    ReportFactory,
    StaffUserFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/engagement/report/"


def _review(report: Report) -> tuple[str, int | None, str, bool]:
    report.refresh_from_db()
    return (
        report.status,
        report.reviewed_by_id,
        report.review_note,
        report.reviewed_at is not None,
    )


# --- the database and the services --------------------------------------------------------------
def test_the_database_refuses_a_second_open_report_on_one_target() -> None:
    report = ReportFactory.create()

    with pytest.raises(IntegrityError), transaction.atomic():
        ReportFactory.create(
            reporter=report.reporter, target_type=report.target_type, target_id=report.target_id
        )


def test_the_database_refuses_an_open_report_with_a_review_time() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        ReportFactory.create(reviewed_at=timezone.now())


def test_reviews_close_only_open_reports_in_one_update() -> None:
    staff, earlier_staff = StaffUserFactory.create(), StaffUserFactory.create()
    open_reports = ReportFactory.create_batch(2)
    dismissed = ReportFactory.create()
    reports_dismiss(report_ids=[dismissed.pk], staff=earlier_staff, note="Fine")

    with CaptureQueriesContext(connection) as captured:
        result = reports_action(
            report_ids=[*(report.pk for report in open_reports), dismissed.pk, 999_999_999],
            staff=staff,
            note="  Video removed  ",
        )

    assert result == ReviewResult(reviewed=2, skipped=2)
    assert [query["sql"].split()[0] for query in captured.captured_queries] == ["UPDATE"]
    assert [_review(report) for report in open_reports] == [
        ("actioned", staff.pk, "Video removed", True),
        ("actioned", staff.pk, "Video removed", True),
    ]
    assert _review(dismissed) == ("dismissed", earlier_staff.pk, "Fine", True)


@pytest.mark.parametrize(
    ("note", "message"),
    [
        ("", "A review needs a note."),
        ("   ", "A review needs a note."),
        ("n" * 1001, "Ensure this field has no more than 1000 characters."),
    ],
)
def test_a_review_needs_a_note(note: str, message: str) -> None:
    report = ReportFactory.create()
    staff = StaffUserFactory.create()
    before = database_state()

    with pytest.raises(InvalidInput) as refused:
        report_action(report_id=report.pk, staff=staff, note=note)

    assert refused.value.errors == {"note": [message]}
    assert database_state() == before
    assert _review(report) == ("open", None, "", False)


def test_single_report_reviews_say_whether_they_closed_it() -> None:
    staff = StaffUserFactory.create()
    report = ReportFactory.create()

    assert report_dismiss(report_id=report.pk, staff=staff, note="No") is True
    assert report_action(report_id=report.pk, staff=staff, note="Yes") is False
    assert _review(report) == ("dismissed", staff.pk, "No", True)


# --- the report list --------------------------------------------------------------------------
@pytest.fixture
def staff() -> User:
    return StaffUserFactory.create()


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def reports() -> dict[str, Report]:
    """An open video report, an open comment report, an open user report, a dismissed one."""
    mallory = UserFactory.create(username="mallory")
    trent = UserFactory.create(username="trent")
    video = VideoFactory.create()
    comment = CommentFactory.create()
    reviewed = ReportFactory.create(reporter=trent, target_id=video.pk, reason="old")
    reports_dismiss(report_ids=[reviewed.pk], staff=StaffUserFactory.create(), note="Nothing")
    return {
        "video": ReportFactory.create(
            reporter=mallory, target_id=video.pk, reason="Stolen video " + "x" * 200
        ),
        "comment": ReportFactory.create(
            reporter=trent, target_type="comment", target_id=comment.pk, reason="Insults"
        ),
        "user": ReportFactory.create(
            reporter=mallory, target_type="user", target_id=trent.pk, reason="Bot"
        ),
        "dismissed": reviewed,
    }


def _listed(response: Any) -> list[int]:
    assert response.status_code == 200
    return [report.pk for report in response.context["cl"].result_list]


def test_the_list_shows_columns_and_links_to_each_target(
    staff_client: Client, reports: dict[str, Report]
) -> None:
    response = staff_client.get(CHANGELIST)

    assert _listed(response) == sorted((report.pk for report in reports.values()), reverse=True)
    page = response.content.decode()
    video, comment, user = reports["video"], reports["comment"], reports["user"]
    for report, model in ((video, "video"), (comment, "comment"), (user, "user")):
        url = reverse(f"admin:engagement_{model}_change", args=[report.target_id])
        assert f'<a href="{url}">{model} {report.target_id}</a>' in page
    assert "Stolen video " + "x" * 66 + "…" in page  # the reason's first 80 characters
    assert "Stolen video " + "x" * 67 not in page
    assert "mallory" in page and "Dismissed" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status__exact=open", ["user", "comment", "video"]),
        ("?status__exact=dismissed", ["dismissed"]),
        ("?target_type__exact=video", ["video", "dismissed"]),
        ("?target_type__exact=comment&status__exact=open", ["comment"]),
        ("?q=mallory", ["user", "video"]),
        ("?q=mallory&target_type__exact=user", ["user"]),
    ],
)
def test_filters_and_search(
    staff_client: Client, reports: dict[str, Report], query: str, expected: list[str]
) -> None:
    response = staff_client.get(CHANGELIST + query)

    assert _listed(response) == [reports[name].pk for name in expected]


def test_search_by_target_id_finds_the_reports_of_that_target(
    staff_client: Client, reports: dict[str, Report]
) -> None:
    target_id = reports["comment"].target_id

    response = staff_client.get(f"{CHANGELIST}?q={target_id}")

    expected = {report.pk for report in reports.values() if report.target_id == target_id}
    assert set(_listed(response)) == expected
    assert reports["comment"].pk in expected
    # a term that is not a number searches usernames only (no error for "²" or "12a")
    assert _listed(staff_client.get(f"{CHANGELIST}?q=%C2%B2")) == []
    assert _listed(staff_client.get(f"{CHANGELIST}?q=12a")) == []


def test_the_filtered_list_never_counts_the_whole_table(
    staff_client: Client, reports: dict[str, Report], django_assert_max_num_queries: Any
) -> None:
    pattern = re.compile(
        rf'COUNT\(\*\).*FROM "{Report._meta.db_table}"(?!.*WHERE)', re.IGNORECASE | re.DOTALL
    )

    with CaptureQueriesContext(connection) as captured:
        response = staff_client.get(CHANGELIST + "?status__exact=open")

    assert response.status_code == 200
    assert [q["sql"] for q in captured.captured_queries if pattern.search(q["sql"])] == []
    with django_assert_max_num_queries(10):
        staff_client.get(CHANGELIST + "?status__exact=open")


def test_a_report_page_is_read_only_and_reports_are_neither_added_nor_deleted(
    staff_client: Client, reports: dict[str, Report]
) -> None:
    report = reports["video"]
    change_url = reverse("admin:engagement_report_change", args=[report.pk])

    page = staff_client.get(change_url)
    edit = staff_client.post(change_url, {"status": "dismissed", "reason": "edited"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert report.reason in page.content.decode()
    assert edit.status_code == 403
    assert staff_client.get(reverse("admin:engagement_report_add")).status_code == 403
    assert (
        staff_client.get(reverse("admin:engagement_report_delete", args=[report.pk])).status_code
        == 403
    )
    assert _review(report) == ("open", None, "", False)


# --- the review actions -----------------------------------------------------------------------
def _action(client: Client, action: str, ids: list[int], query: str = "", **extra: Any) -> Any:
    return client.post(
        CHANGELIST + query,
        {"action": action, "_selected_action": ids, **extra},
        follow="apply" in extra,
    )


@pytest.mark.parametrize(
    ("action", "status", "done"),
    [("mark_actioned", "actioned", "marked actioned"), ("dismiss", "dismissed", "dismissed")],
)
def test_a_review_action_asks_for_a_note_then_reviews_the_open_selected_reports(
    staff_client: Client,
    staff: User,
    reports: dict[str, Report],
    action: str,
    status: str,
    done: str,
) -> None:
    selected = [reports["video"].pk, reports["user"].pk, reports["dismissed"].pk]
    before = database_state()

    # when staff picks the action, a confirmation page asks for a note and changes nothing
    confirmation = _action(staff_client, action, selected, index="0")
    assert confirmation.status_code == 200
    assert confirmation.templates[0].name == ("admin/engagement/report/review_confirmation.html")
    page = confirmation.content.decode()
    assert "2 open reports; 1 of the selected is already reviewed" in page
    assert 'name="note"' in page
    assert [report.pk for report in confirmation.context["shown"]] == sorted(selected[:2])
    assert database_state() == before

    # an empty note is refused on the same page
    refused = _action(staff_client, action, selected, apply="yes", note="  ")
    assert refused.status_code == 200
    assert refused.context["form"].errors == {"note": ["This field is required."]}
    assert database_state() == before

    # with a note, the open ones are reviewed by this staff member; the reviewed one is left
    applied = _action(staff_client, action, selected, apply="yes", note="Checked the video")
    assert applied.redirect_chain == [(CHANGELIST, 302)]
    assert [str(message) for message in applied.context["messages"]] == [
        f"2 reports {done}. 1 already reviewed, left as they were."
    ]
    assert _review(reports["video"]) == (status, staff.pk, "Checked the video", True)
    assert _review(reports["user"]) == (status, staff.pk, "Checked the video", True)
    assert _review(reports["comment"]) == ("open", None, "", False)
    assert _review(reports["dismissed"])[0:3] == (
        "dismissed",
        reports["dismissed"].reviewed_by_id,
        "Nothing",
    )


def test_a_selection_without_open_reports_changes_nothing(
    staff_client: Client, reports: dict[str, Report]
) -> None:
    before = database_state()

    response = staff_client.post(
        CHANGELIST,
        {"action": "mark_actioned", "_selected_action": [reports["dismissed"].pk], "index": "0"},
        follow=True,
    )

    assert [str(message) for message in response.context["messages"]] == [
        "None of the selected reports is open: a review is final, nothing was changed."
    ]
    assert database_state() == before


def test_select_all_reviews_every_report_the_filters_match(
    staff_client: Client, staff: User, reports: dict[str, Report]
) -> None:
    query = "?target_type__exact=video"
    # the page's checkboxes hold one id; "select all" stands for every match of the filters
    confirmation = _action(
        staff_client, "dismiss", [reports["video"].pk], query, index="0", select_across="1"
    )
    assert confirmation.status_code == 200
    assert confirmation.context["open_count"] == 1

    applied = _action(
        staff_client,
        "dismiss",
        [reports["video"].pk],
        query,
        index="0",
        select_across="1",
        apply="yes",
        note="Duplicate",
    )

    assert [str(message) for message in applied.context["messages"]] == [
        "1 report dismissed. 1 already reviewed, left as they were."
    ]
    assert _review(reports["video"]) == ("dismissed", staff.pk, "Duplicate", True)
    assert _review(reports["comment"]) == ("open", None, "", False)
    assert _review(reports["user"]) == ("open", None, "", False)


# --- the user's page ----------------------------------------------------------------------------
def test_the_user_page_shows_reports_filed_and_against_with_links(
    staff_client: Client, reports: dict[str, Report]
) -> None:
    mallory = User.objects.get(username="mallory")
    trent = User.objects.get(username="trent")

    mallory_page = staff_client.get(reverse("admin:engagement_user_change", args=[mallory.pk]))
    trent_page = staff_client.get(reverse("admin:engagement_user_change", args=[trent.pk]))

    filed = mallory_page.content.decode()
    assert "Reports filed" in filed and "Reports against this user" in filed
    assert "2 open (" in filed
    for report in (reports["video"], reports["user"]):
        assert reverse("admin:engagement_report_change", args=[report.pk]) in filed
    assert f"{CHANGELIST}?reporter__id__exact={mallory.pk}" in filed
    against = trent_page.content.decode()
    # trent filed one open and one dismissed report, and mallory reported trent
    assert "1 open, 1 dismissed (" in against
    assert "1 open (" in against
    assert f"{CHANGELIST}?target_type__exact=user&amp;target_id={trent.pk}" in against

    # and the links open the report list filtered to those reports
    by_reporter = staff_client.get(f"{CHANGELIST}?reporter__id__exact={mallory.pk}")
    against_trent = staff_client.get(f"{CHANGELIST}?target_type__exact=user&target_id={trent.pk}")
    assert _listed(by_reporter) == [reports["user"].pk, reports["video"].pk]
    assert _listed(against_trent) == [reports["user"].pk]


def test_the_user_page_of_someone_without_reports_says_none(staff_client: Client) -> None:
    user = UserFactory.create()

    page = staff_client.get(reverse("admin:engagement_user_change", args=[user.pk]))

    assert page.status_code == 200
    assert page.content.decode().count("None.") == 2
