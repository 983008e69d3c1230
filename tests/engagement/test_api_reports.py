"""POST reports and GET me/reports (SPEC §3 Reports; the rules chosen are in docs/reports.md)."""

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from engagement.models import Comment, Report, User, Video
from engagement.services.reports import reports_action, reports_dismiss
from tests.conftest import assert_problem, database_state, unknown_id
from tests.factories import (
    CommentFactory,
    ReportFactory,
    StaffUserFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _document(report: Report) -> dict[str, Any]:
    return {
        "id": report.pk,
        "target_type": report.target_type,
        "target_id": report.target_id,
        "reason": report.reason,
        "status": report.status,
        "created_at": _iso(report.created_at),
    }


def _report(client: APIClient, body: Any, **extra: Any) -> Any:
    return client.post("/api/v1/reports", body, format="json", **extra)


# --- filing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("target_type", ["user", "video", "comment"])
def test_a_report_opens_with_201_and_its_document(
    make_client: Callable[..., APIClient],
    target_type: str,
    django_assert_num_queries: Callable[..., Any],
) -> None:
    reporter = UserFactory.create()
    target = {
        "user": UserFactory.create,
        "video": VideoFactory.create,
        "comment": CommentFactory.create,
    }[target_type]()

    client = make_client(reporter, device_id="phone-3")

    # the device token; in one atomic block (BEGIN/COMMIT or savepoints) the target exists?,
    # the report (one INSERT … ON CONFLICT … RETURNING)
    with django_assert_num_queries(5):
        response = _report(
            client,
            {"target_type": target_type, "target_id": target.pk, "reason": "  Spam links  "},
        )

    assert response.status_code == 201
    report = Report.objects.get()
    assert response.json() == {
        "id": report.pk,
        "target_type": target_type,
        "target_id": target.pk,
        "reason": "Spam links",
        "status": "open",
        "created_at": _iso(report.created_at),
    }
    assert (report.reporter_id, report.target_type, report.target_id, report.reason) == (
        reporter.pk,
        target_type,
        target.pk,
        "Spam links",
    )
    assert (report.ip, report.device_id) == ("127.0.0.1", "phone-3")
    assert (report.reviewed_at, report.reviewed_by_id, report.review_note) == (None, None, "")


def test_a_second_open_report_on_the_same_target_is_200_with_the_first_unchanged(
    client_for_user: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    first = _report(
        client_for_user, {"target_type": "video", "target_id": video.pk, "reason": "Stolen"}
    )
    before = database_state()

    with django_assert_num_queries(6):  # as a new report, and the open report read
        again = _report(
            client_for_user,
            {"target_type": "video", "target_id": video.pk, "reason": "Other words"},
        )

    assert first.status_code == 201
    assert (again.status_code, again.json()) == (200, first.json())
    assert database_state() == before
    assert Report.objects.get().reason == "Stolen"


def test_the_same_target_id_of_another_type_is_another_report(
    client_for_user: APIClient,
) -> None:
    video = VideoFactory.create()
    comment = CommentFactory.create()
    other = UserFactory.create()
    # the ids may coincide or not; a different type is a different target either way
    bodies = [
        {"target_type": "video", "target_id": video.pk, "reason": "a"},
        {"target_type": "comment", "target_id": comment.pk, "reason": "b"},
        {"target_type": "user", "target_id": other.pk, "reason": "c"},
    ]

    statuses = [_report(client_for_user, body).status_code for body in bodies]

    assert statuses == [201, 201, 201]
    assert Report.objects.count() == 3


def test_reports_of_different_users_on_one_target_are_separate(
    make_client: Callable[..., APIClient],
) -> None:
    video = VideoFactory.create()
    body = {"target_type": "video", "target_id": video.pk, "reason": "Spam"}

    first = _report(make_client(UserFactory.create()), body)
    second = _report(make_client(UserFactory.create()), body)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


@pytest.mark.parametrize("review", [reports_action, reports_dismiss])
def test_after_a_review_the_same_report_opens_anew_with_201(
    client_for_user: APIClient, review: Callable[..., Any]
) -> None:
    comment = CommentFactory.create()
    body = {"target_type": "comment", "target_id": comment.pk, "reason": "Abuse"}
    first = _report(client_for_user, body).json()
    review(report_ids=[first["id"]], staff=StaffUserFactory.create(), note="Looked at it")

    again = _report(client_for_user, {**body, "reason": "Still abusive"})

    assert again.status_code == 201
    new = Report.objects.get(pk=again.json()["id"])
    assert again.json() == _document(new)
    assert new.pk != first["id"]
    assert new.reason == "Still abusive"
    assert sorted(Report.objects.values_list("status", flat=True)) == sorted(
        ["open", "actioned" if review is reports_action else "dismissed"]
    )
    # and the open one answers 200 from now on
    assert _report(client_for_user, body).json() == again.json()


def test_reporting_your_own_video_and_comment_is_accepted(
    client_for_user: APIClient, user: User
) -> None:
    video = VideoFactory.create(creator=user)
    comment = CommentFactory.create(user=user, video=video)

    responses = [
        _report(client_for_user, {"target_type": "video", "target_id": video.pk, "reason": "x"}),
        _report(
            client_for_user, {"target_type": "comment", "target_id": comment.pk, "reason": "x"}
        ),
    ]

    assert [response.status_code for response in responses] == [201, 201]


def test_an_uncounted_comment_can_be_reported(client_for_user: APIClient) -> None:
    comment = CommentFactory.create(counted=False)

    response = _report(
        client_for_user, {"target_type": "comment", "target_id": comment.pk, "reason": "Bot"}
    )

    assert response.status_code == 201


def test_reporting_yourself_is_400_and_changes_nothing(
    client_for_user: APIClient, user: User
) -> None:
    before = database_state()

    response = _report(
        client_for_user, {"target_type": "user", "target_id": user.pk, "reason": "Me"}
    )

    assert_problem(response, 400, "cannot_report_self", "You cannot report yourself.")
    assert database_state() == before


@pytest.mark.parametrize(
    ("target_type", "model", "detail"),
    [
        ("user", User, "No user with this id."),
        ("video", Video, "No video with this id."),
        ("comment", Comment, "No comment with this id."),
    ],
)
def test_an_unknown_target_is_404_and_changes_nothing(
    client_for_user: APIClient,
    target_type: str,
    model: Any,
    detail: str,
    django_assert_num_queries: Callable[..., Any],
) -> None:
    VideoFactory.create()
    CommentFactory.create()
    before = database_state()
    body = {"target_type": target_type, "target_id": unknown_id(model), "reason": "Spam"}

    # the device token; the target exists? in the atomic block (in a test a savepoint, rolled
    # back and released)
    with django_assert_num_queries(5):
        response = _report(client_for_user, body)

    assert_problem(response, 404, "not_found", detail)
    assert database_state() == before


def test_a_deactivated_user_is_404(client_for_user: APIClient) -> None:
    gone = UserFactory.create(is_active=False)
    before = database_state()

    response = _report(
        client_for_user, {"target_type": "user", "target_id": gone.pk, "reason": "Spam"}
    )

    assert_problem(response, 404, "not_found", "No user with this id.")
    assert database_state() == before


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        # target_type
        ({"target_type": "sticker"}, {"target_type": ['"sticker" is not a valid choice.']}),
        ({"target_type": "Video"}, {"target_type": ['"Video" is not a valid choice.']}),
        ({"target_type": ""}, {"target_type": ['"" is not a valid choice.']}),
        ({"target_type": None}, {"target_type": ["This field may not be null."]}),
        ({"target_type": 1}, {"target_type": ['"1" is not a valid choice.']}),
        ({"target_type": ["video"]}, {"target_type": ["\"['video']\" is not a valid choice."]}),
        # target_id
        ({"target_id": "12"}, {"target_id": ["Must be an integer."]}),
        ({"target_id": True}, {"target_id": ["Must be an integer."]}),
        ({"target_id": 1.5}, {"target_id": ["Must be an integer."]}),
        ({"target_id": None}, {"target_id": ["This field may not be null."]}),
        ({"target_id": 0}, {"target_id": ["Ensure this value is greater than or equal to 1."]}),
        ({"target_id": -3}, {"target_id": ["Ensure this value is greater than or equal to 1."]}),
        (
            {"target_id": 2**63},
            {"target_id": ["Ensure this value is less than or equal to 9223372036854775807."]},
        ),
        # reason
        ({"reason": ""}, {"reason": ["This field may not be blank."]}),
        ({"reason": " \n\t "}, {"reason": ["This field may not be blank."]}),
        ({"reason": None}, {"reason": ["This field may not be null."]}),
        ({"reason": 5}, {"reason": ["Must be a string."]}),
        ({"reason": ["spam"]}, {"reason": ["Must be a string."]}),
        ({"reason": "r" * 501}, {"reason": ["Ensure this field has no more than 500 characters."]}),
        ({"reason": "nul\x00"}, {"reason": ["Null characters are not allowed."]}),
    ],
)
def test_bad_input_is_400_per_field_and_changes_nothing(
    client_for_user: APIClient, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    video = VideoFactory.create()
    valid = {"target_type": "video", "target_id": video.pk, "reason": "Spam"}
    before = database_state()

    response = _report(client_for_user, {**valid, **body})

    ((field, messages),) = errors.items()
    assert_problem(
        response, 400, "invalid", f"Invalid input: {field}: {messages[0]}", errors=errors
    )
    assert database_state() == before


def test_a_reason_of_500_characters_is_accepted(client_for_user: APIClient) -> None:
    video = VideoFactory.create()

    response = _report(
        client_for_user, {"target_type": "video", "target_id": video.pk, "reason": "r" * 500}
    )

    assert response.status_code == 201
    assert Report.objects.get().reason == "r" * 500


def test_missing_fields_are_each_named(client_for_user: APIClient) -> None:
    before = database_state()

    response = _report(client_for_user, {})

    required = ["This field is required."]
    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: target_type: This field is required.; "
        "target_id: This field is required.; reason: This field is required.",
        errors={"target_type": required, "target_id": required, "reason": required},
    )
    assert database_state() == before


@pytest.mark.parametrize(("body", "kind"), [([], "list"), ("spam", "str"), (7, "int")])
def test_a_body_that_is_not_an_object_is_400(
    client_for_user: APIClient, body: Any, kind: str
) -> None:
    before = database_state()

    response = _report(client_for_user, body)

    message = f"Invalid data. Expected a dictionary, but got {kind}."
    assert_problem(response, 400, "invalid", message, errors={"non_field_errors": [message]})
    assert database_state() == before


def test_reports_without_a_token_are_401_and_change_nothing(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    video = VideoFactory.create()
    before = database_state()

    with django_assert_num_queries(0):  # no token: refused before any query
        post = _report(api_client, {"target_type": "video", "target_id": video.pk, "reason": "x"})
        get = api_client.get("/api/v1/me/reports")

    for response in (post, get):
        assert_problem(
            response, 401, "not_authenticated", "Authentication credentials were not provided."
        )
    assert database_state() == before


# --- Idempotency-Key and throttles --------------------------------------------------------------
def test_a_replay_with_the_same_idempotency_key_returns_the_first_answer(
    client_for_user: APIClient,
) -> None:
    video = VideoFactory.create()
    body = {"target_type": "video", "target_id": video.pk, "reason": "Spam"}
    first = _report(client_for_user, body, HTTP_IDEMPOTENCY_KEY="report-1")
    before = database_state()

    replay = _report(client_for_user, body, HTTP_IDEMPOTENCY_KEY="report-1")

    assert first.status_code == 201
    assert not first.has_header("Idempotent-Replayed")
    assert (replay.status_code, replay.content) == (201, first.content)
    assert replay["Idempotent-Replayed"] == "true"
    assert database_state() == before
    # without the key, the same report is the 200 of an open report
    plain = _report(client_for_user, body)
    assert (plain.status_code, plain.json()) == (200, first.json())


def test_the_same_idempotency_key_with_another_report_is_409(client_for_user: APIClient) -> None:
    video = VideoFactory.create()
    body = {"target_type": "video", "target_id": video.pk, "reason": "Spam"}
    assert _report(client_for_user, body, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    before = database_state()

    response = _report(client_for_user, {**body, "reason": "Other"}, HTTP_IDEMPOTENCY_KEY="k")

    assert_problem(
        response,
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was used for a different request.",
    )
    assert database_state() == before


def test_reports_count_against_the_write_throttle(
    client_for_user: APIClient, throttle_rates: Callable[..., None]
) -> None:
    throttle_rates(writes="1/day")
    videos = VideoFactory.create_batch(2)
    assert (
        _report(
            client_for_user, {"target_type": "video", "target_id": videos[0].pk, "reason": "x"}
        ).status_code
        == 201
    )
    before = database_state()

    response = _report(
        client_for_user, {"target_type": "video", "target_id": videos[1].pk, "reason": "x"}
    )

    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) >= 1
    assert database_state() == before


# --- GET me/reports -----------------------------------------------------------------------------
def test_me_reports_lists_only_mine_newest_first_with_their_status(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    me, someone = UserFactory.create(), UserFactory.create()
    staff = StaffUserFactory.create()
    mine = [
        ReportFactory.create(reporter=me),
        ReportFactory.create(reporter=me, target_type="user", target_id=someone.pk),
        ReportFactory.create(reporter=me),
    ]
    ReportFactory.create(reporter=someone)
    reports_action(report_ids=[mine[0].pk], staff=staff, note="Removed the video")
    reports_dismiss(report_ids=[mine[1].pk], staff=staff, note="Nothing wrong")
    for report in mine:
        report.refresh_from_db()

    client = make_client(me)

    with django_assert_num_queries(2):  # the device token, the page of reports
        response = client.get("/api/v1/me/reports")

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [_document(mine[2]), _document(mine[1]), _document(mine[0])],
    }
    assert [item["status"] for item in response.json()["results"]] == [
        "open",
        "dismissed",
        "actioned",
    ]


def test_me_reports_without_reports_is_an_empty_page(client_for_user: APIClient) -> None:
    ReportFactory.create()

    response = client_for_user.get("/api/v1/me/reports")

    assert (response.status_code, response.json()) == (
        200,
        {"next": None, "previous": None, "results": []},
    )


def test_me_reports_pages_visit_every_report_once(
    client_for_user: APIClient, user: User, django_assert_num_queries: Callable[..., Any]
) -> None:
    reports = ReportFactory.create_batch(5, reporter=user)
    newest_first = [_document(report) for report in reversed(reports)]

    first = client_for_user.get("/api/v1/me/reports?page_size=2").json()
    second = client_for_user.get(first["next"]).json()
    with django_assert_num_queries(2):  # a page of one: as a page of three (above)
        third = client_for_user.get(second["next"]).json()
    back = client_for_user.get(second["previous"]).json()

    assert first["previous"] is None
    assert [first["results"], second["results"], third["results"]] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
    ]
    assert third["next"] is None
    assert back["results"] == first["results"]


def test_a_forged_cursor_is_404(client_for_user: APIClient) -> None:
    response = client_for_user.get("/api/v1/me/reports?cursor=garbage")

    assert_problem(response, 404, "not_found", "Invalid cursor")


# --- concurrency --------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_16_simultaneous_identical_reports_make_one_report(
    make_client: Callable[..., APIClient],
) -> None:
    # given one reporter with 16 clients (one per thread) and a video
    reporter = UserFactory.create()
    video = VideoFactory.create()
    clients = [make_client(reporter) for _ in range(16)]
    body = {"target_type": "video", "target_id": video.pk, "reason": "Spam"}
    barrier = threading.Barrier(16)
    answers: list[tuple[int, bytes]] = [(0, b"")] * 16

    def report(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            response = _report(clients[index], body)
            answers[index] = (response.status_code, response.content)
        finally:
            connection.close()

    # when all 16 post the same report at the same moment
    threads = [threading.Thread(target=report, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then exactly one report exists: one 201, fifteen 200, all with its document
    assert not any(thread.is_alive() for thread in threads)
    assert Counter(status for status, _ in answers) == {201: 1, 200: 15}
    report_row = Report.objects.get()
    assert [json.loads(content) for _, content in answers] == [_document(report_row)] * 16
