"""Every error is an RFC 9457 problem document (SPEC §3) and a refused request changes nothing."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import Comment, DeviceToken, User, Video
from tests.conftest import (
    PROBLEM_CONTENT_TYPE,
    assert_problem,
    database_state,
    problem_document,
    unknown_id,
)
from tests.factories import CommentFactory, UserFactory, VideoFactory

pytestmark = pytest.mark.django_db


# --- 400: validation ----------------------------------------------------------------------------
def test_validation_error_lists_every_field_with_nested_keys(client_for_user: APIClient) -> None:
    before = database_state()

    response = client_for_user.post(
        "/api/v1/videos",
        {"title": 5, "hashtags": ["ok", "bad tag", 7], "duration_ms": "12"},
        format="json",
    )

    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: title: Must be a string.; "
        "hashtags.1: A hashtag is letters, digits and underscores, optionally after '#'.; "
        "hashtags.2: Must be a string.; duration_ms: Must be an integer.",
        errors={
            "title": ["Must be a string."],
            "hashtags.1": ["A hashtag is letters, digits and underscores, optionally after '#'."],
            "hashtags.2": ["Must be a string."],
            "duration_ms": ["Must be an integer."],
        },
    )
    assert database_state() == before


def test_validation_error_for_missing_fields(client_for_user: APIClient) -> None:
    before = database_state()

    response = client_for_user.post("/api/v1/videos", {}, format="json")

    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: title: This field is required.; duration_ms: This field is required.",
        errors={
            "title": ["This field is required."],
            "duration_ms": ["This field is required."],
        },
    )
    assert database_state() == before


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("[1, 2]", "Invalid data. Expected a dictionary, but got list."),
        ('"a string"', "Invalid data. Expected a dictionary, but got str."),
        ("42", "Invalid data. Expected a dictionary, but got int."),
        ("true", "Invalid data. Expected a dictionary, but got bool."),
    ],
)
def test_a_body_that_is_not_an_object_is_refused(
    client_for_user: APIClient, body: str, detail: str
) -> None:
    before = database_state()

    response = client_for_user.post("/api/v1/videos", body, content_type="application/json")

    assert_problem(response, 400, "invalid", detail, errors={"non_field_errors": [detail]})
    assert database_state() == before


def test_a_json_null_body_is_refused(client_for_user: APIClient) -> None:
    before = database_state()

    response = client_for_user.post("/api/v1/videos", "null", content_type="application/json")

    assert_problem(
        response, 400, "null", "No data provided", errors={"non_field_errors": ["No data provided"]}
    )
    assert database_state() == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "x" * 1_000_000, "Ensure this field has no more than 200 characters."),
        ("caption", "x" * 100_000, "Ensure this field has no more than 2200 characters."),
        ("duration_ms", 10**30, "Ensure this value is less than or equal to 36000000."),
        ("duration_ms", -(10**30), "Ensure this value is greater than or equal to 1."),
        ("duration_ms", 1.5, "Must be an integer."),
        ("duration_ms", True, "Must be an integer."),
        ("duration_ms", None, "This field may not be null."),
        ("title", "a\x00b", "Null characters are not allowed."),
        ("title", ["a"], "Must be a string."),
        ("title", {"a": 1}, "Must be a string."),
    ],
)
def test_wrong_types_and_huge_values_are_refused(
    client_for_user: APIClient, field: str, value: Any, message: str
) -> None:
    body = {"title": "A title", "duration_ms": 1000, field: value}
    before = database_state()

    response = client_for_user.post("/api/v1/videos", body, format="json")

    assert_problem(
        response, 400, "invalid", f"Invalid input: {field}: {message}", errors={field: [message]}
    )
    assert database_state() == before


# --- 400: malformed JSON ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"title": ', "Expecting value: line 1 column 11 (char 10)"),
        (
            b"{title: 1}",
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (b'{"title": "a"} trailing', "Extra data: line 1 column 16 (char 15)"),
        (b'{"duration_ms": NaN}', "Out of range float values are not JSON compliant: 'NaN'"),
        (b"\xff\xfe{}", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    ],
)
def test_malformed_json_is_a_parse_error(
    client_for_user: APIClient, raw: bytes, reason: str
) -> None:
    before = database_state()

    response = client_for_user.post("/api/v1/videos", raw, content_type="application/json")

    assert_problem(response, 400, "parse_error", f"JSON parse error - {reason}")
    assert database_state() == before


def test_malformed_json_before_login_is_a_parse_error(api_client: APIClient) -> None:
    before = database_state()

    response = api_client.post("/api/v1/auth/register", b"{", content_type="application/json")

    assert_problem(
        response,
        400,
        "parse_error",
        "JSON parse error - Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    )
    assert database_state() == before


@pytest.mark.parametrize("device_id", ["has spaces", "x" * 129, "caf\u00e9", "tab\there"])
def test_unusable_device_id_is_refused(api_client: APIClient, device_id: str) -> None:
    video = VideoFactory.create()
    _, token = DeviceToken.objects.create(user=UserFactory.create())
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_DEVICE_ID=device_id)
    before = database_state()

    response = api_client.put(f"/api/v1/videos/{video.pk}/like")

    assert_problem(
        response,
        400,
        "invalid_device_id",
        "X-Device-Id must be 1-128 printable ASCII characters without spaces.",
        errors={"X-Device-Id": ["1-128 printable ASCII characters without spaces."]},
    )
    assert database_state() == before


def test_a_body_over_the_upload_limit_is_refused_with_413(
    client_for_user: APIClient, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    video = VideoFactory.create()
    before = database_state()

    response = client_for_user.post(
        f"/api/v1/videos/{video.pk}/comments",
        json.dumps({"text": "x" * 2000}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="big-body",
    )

    assert_problem(response, 413, "request_too_large", "The request body is too large.")
    assert database_state() == before


# --- 401 ----------------------------------------------------------------------------------------
def test_missing_token_is_401(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/me")

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("header", "code", "detail"),
    [
        ("Bearer", "authentication_failed", "Invalid token header. No credentials provided."),
        (
            "Bearer abc def",
            "authentication_failed",
            "Invalid token header. Token string should not contain spaces.",
        ),
        ("Bearer " + "0" * 64, "authentication_failed", "Invalid token."),
        ("Bearer " + "x" * 10_000, "authentication_failed", "Invalid token."),
        ("Bearer \u00e9\u00e9\u00e9", "authentication_failed", "Invalid token."),
        ("Bearer ab\x00cd", "authentication_failed", "Invalid token."),
        ("Token abc", "not_authenticated", "Authentication credentials were not provided."),
        (
            "Basic dXNlcjpwYXNz",
            "not_authenticated",
            "Authentication credentials were not provided.",
        ),
    ],
)
def test_bad_token_is_401(api_client: APIClient, header: str, code: str, detail: str) -> None:
    video = VideoFactory.create()
    before = database_state()

    response = api_client.put(f"/api/v1/videos/{video.pk}/like", HTTP_AUTHORIZATION=header)

    assert_problem(response, 401, code, detail)
    assert response["WWW-Authenticate"] == "Bearer"
    assert database_state() == before


def test_expired_token_is_401_and_is_deleted(api_client: APIClient) -> None:
    user = UserFactory.create()
    instance, token = DeviceToken.objects.create(user=user, expiry=timedelta(days=1))
    DeviceToken.objects.filter(pk=instance.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    video = VideoFactory.create()

    response = api_client.put(
        f"/api/v1/videos/{video.pk}/like", HTTP_AUTHORIZATION=f"Bearer {token}"
    )

    assert_problem(response, 401, "authentication_failed", "Invalid token.")
    assert not DeviceToken.objects.filter(pk=instance.pk).exists()
    assert video.likes.count() == 0


def test_revoked_token_is_401(api_client: APIClient) -> None:
    user = UserFactory.create()
    _, token = DeviceToken.objects.create(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.post("/api/v1/auth/logout").status_code == 204
    video = VideoFactory.create()
    before = database_state()

    response = api_client.put(f"/api/v1/videos/{video.pk}/like")

    assert_problem(response, 401, "authentication_failed", "Invalid token.")
    assert database_state() == before


def test_token_of_a_deactivated_user_is_401(api_client: APIClient) -> None:
    user = UserFactory.create()
    _, token = DeviceToken.objects.create(user=user)
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = api_client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_problem(response, 401, "authentication_failed", "User inactive or deleted.")


# --- 404 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope",
        "/api/nope",
        "/api/v1/videos/",
        "/api/v1/videos/abc",
        "/api/v1/videos/0",
        "/api/v1/videos/-1",
        "/api/v1/videos/1234567890123456789012345",
        "/api/v1/videos/1234567890123456789012345/like",
        "/api/v1/comments/1234567890123456789012345/like",
        "/api/v1/creators/1234567890123456789012345/follow",
        "/api/v1/videos/9999999999999999999",
    ],
)
def test_unknown_url_under_api_is_a_problem_document(client_for_user: APIClient, path: str) -> None:
    for method in ("get", "post", "put", "delete"):
        response = getattr(client_for_user, method)(path)

        assert_problem(response, 404, "not_found", "No resource at this address.")


def test_unknown_url_outside_the_api_is_a_problem_document_too(api_client: APIClient) -> None:
    response = api_client.get("/nope")

    # Django's handler404 renders the same problem document everywhere.
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response.json() == problem_document(
        404, "not_found", "No resource at this address.", "/nope"
    )


def _unknown_ids() -> dict[str, int]:
    return {
        "video": unknown_id(Video),
        "comment": unknown_id(Comment),
        "user": unknown_id(User),
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("get", "/api/v1/videos/{video}", None, "No video with this id."),
        ("put", "/api/v1/videos/{video}/like", None, "No video with this id."),
        ("delete", "/api/v1/videos/{video}/like", None, "No video with this id."),
        ("get", "/api/v1/videos/{video}/comments", None, "No video with this id."),
        ("post", "/api/v1/videos/{video}/comments", {"text": "hi"}, "No video with this id."),
        ("post", "/api/v1/videos/{video}/shares", {}, "No video with this id."),
        (
            "post",
            "/api/v1/videos/{video}/plays",
            {"watched_ms": 1, "completed": False},
            "No video with this id.",
        ),
        ("put", "/api/v1/comments/{comment}/like", None, "No comment with this id."),
        ("delete", "/api/v1/comments/{comment}/like", None, "No comment with this id."),
        ("put", "/api/v1/creators/{user}/follow", None, "No creator with this id."),
        ("delete", "/api/v1/creators/{user}/follow", None, "No creator with this id."),
        ("get", "/api/v1/videos/999999999999999999", None, "No video with this id."),
        ("put", "/api/v1/videos/999999999999999999/like", None, "No video with this id."),
    ],
)
def test_unknown_ids_are_404_and_change_nothing(
    client_for_user: APIClient,
    method: str,
    path: str,
    body: dict | None,
    detail: str,
) -> None:
    # given some existing rows, so "unknown" is not just "empty table"
    CommentFactory.create()
    url = path.format(**_unknown_ids())
    before = database_state()

    response = getattr(client_for_user, method)(url, body, format="json")

    assert_problem(response, 404, "not_found", detail)
    assert database_state() == before


def test_forged_cursor_is_404_not_500(client_for_user: APIClient) -> None:
    video = VideoFactory.create()
    CommentFactory.create(video=video)
    # base64("p=abc"): a cursor whose position is not an id
    for cursor in ("garbage", "cD1hYmM=", "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"):
        response = client_for_user.get(f"/api/v1/videos/{video.pk}/comments?cursor={cursor}")

        assert_problem(response, 404, "not_found", "Invalid cursor")


# --- 405, 406, 415 ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("delete", "/api/v1/videos/{video}", "GET, HEAD, OPTIONS"),
        ("patch", "/api/v1/videos/{video}", "GET, HEAD, OPTIONS"),
        ("post", "/api/v1/me", "GET, PATCH, HEAD, OPTIONS"),
        ("get", "/api/v1/videos/{video}/like", "PUT, DELETE, OPTIONS"),
        ("post", "/api/v1/videos/{video}/like", "PUT, DELETE, OPTIONS"),
        ("get", "/api/v1/videos/{video}/plays", "POST, OPTIONS"),
        ("put", "/api/v1/videos", "GET, POST, HEAD, OPTIONS"),
        ("get", "/api/v1/auth/logout", "POST, OPTIONS"),
    ],
)
def test_method_not_allowed_is_405(
    client_for_user: APIClient, method: str, path: str, allow: str
) -> None:
    video = VideoFactory.create()
    before = database_state()

    response = getattr(client_for_user, method)(path.format(video=video.pk), {}, format="json")

    assert_problem(response, 405, "method_not_allowed", f'Method "{method.upper()}" not allowed.')
    assert response["Allow"] == allow
    assert database_state() == before


def test_method_not_allowed_before_login_is_405(api_client: APIClient) -> None:
    response = api_client.get("/api/v1/auth/register")

    assert_problem(response, 405, "method_not_allowed", 'Method "GET" not allowed.')


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "title=t&duration_ms=5"),
        ("text/plain", '{"title": "t", "duration_ms": 5}'),
        ("multipart/form-data; boundary=xyz", "--xyz--"),
        ("application/xml", "<video/>"),
    ],
)
def test_unsupported_media_type_is_415(
    client_for_user: APIClient, content_type: str, body: str
) -> None:
    before = database_state()

    response = client_for_user.post("/api/v1/videos", body, content_type=content_type)

    assert_problem(
        response,
        415,
        "unsupported_media_type",
        f'Unsupported media type "{content_type}" in request.',
    )
    assert database_state() == before


def test_unacceptable_accept_header_is_406(client_for_user: APIClient) -> None:
    response = client_for_user.get("/api/v1/me", HTTP_ACCEPT="text/html")

    assert_problem(response, 406, "not_acceptable", "Could not satisfy the request Accept header.")


# --- 429 ----------------------------------------------------------------------------------------
def _throttled_detail(retry_after: int) -> str:
    unit = "second" if retry_after == 1 else "seconds"
    return f"Request was throttled. Expected available in {retry_after} {unit}."


def _assert_throttled(response: Any, period_seconds: int) -> None:
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= period_seconds
    assert_problem(response, 429, "throttled", _throttled_detail(retry_after))


def test_writes_over_the_limit_are_429_with_retry_after_and_write_nothing(
    client_for_user: APIClient, throttle_rates: Callable[..., None]
) -> None:
    throttle_rates(writes="2/day")
    video = VideoFactory.create()
    for text in ("one", "two"):
        response = client_for_user.post(
            f"/api/v1/videos/{video.pk}/comments", {"text": text}, format="json"
        )
        assert response.status_code == 201
    before = database_state()

    response = client_for_user.post(
        f"/api/v1/videos/{video.pk}/comments", {"text": "three"}, format="json"
    )

    _assert_throttled(response, 86400)
    assert database_state() == before
    assert list(video.comments.order_by("id").values_list("text", flat=True)) == ["one", "two"]
    # reads are not writes: they go on
    assert client_for_user.get(f"/api/v1/videos/{video.pk}").status_code == 200


def test_reads_over_the_user_limit_are_429(
    client_for_user: APIClient, throttle_rates: Callable[..., None]
) -> None:
    throttle_rates(user="3/day")
    for _ in range(3):
        assert client_for_user.get("/api/v1/me").status_code == 200

    response = client_for_user.get("/api/v1/me")

    _assert_throttled(response, 86400)


def test_registrations_over_the_auth_limit_are_429_and_create_no_user(
    api_client: APIClient, throttle_rates: Callable[..., None]
) -> None:
    throttle_rates(auth="2/day")
    for name in ("first", "second"):
        response = api_client.post(
            "/api/v1/auth/register",
            {"username": name, "password": "a-good-password-1"},
            format="json",
        )
        assert response.status_code == 201
    before = database_state()

    response = api_client.post(
        "/api/v1/auth/register",
        {"username": "third", "password": "a-good-password-1"},
        format="json",
    )

    _assert_throttled(response, 86400)
    assert database_state() == before
    assert not User.objects.filter(username="third").exists()


def test_login_attempts_over_the_auth_limit_are_429(
    api_client: APIClient, throttle_rates: Callable[..., None]
) -> None:
    throttle_rates(auth="1/day")
    user = UserFactory.create()
    body = {"username": user.username, "password": "wrong-password"}
    assert api_client.post("/api/v1/auth/token", body, format="json").status_code == 400
    before = database_state()

    response = api_client.post(
        "/api/v1/auth/token",
        {"username": user.username, "password": "a-good-password-1"},
        format="json",
    )

    _assert_throttled(response, 86400)
    assert database_state() == before
