"""Accounts API (SPEC §3 "Accounts"): register, token, logout, me."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import DeviceToken, User
from tests.conftest import assert_problem, database_state
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-good-password-1"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _bearer(client: APIClient, token: str) -> APIClient:
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- register -----------------------------------------------------------------------------------
def test_register_creates_the_user_and_a_device_token(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    # the username taken?, then in one atomic block (BEGIN/COMMIT or savepoints): the user,
    # the user's device tokens (the device limit), the new token
    with django_assert_num_queries(6):
        response = api_client.post(
            "/api/v1/auth/register",
            {"username": "alice", "password": PASSWORD, "display_name": "Alice Cooks"},
            HTTP_X_DEVICE_ID="phone-1",
            HTTP_USER_AGENT="ChorusApp/1.0",
        )

    assert response.status_code == 201
    user = User.objects.get(username="alice")
    token = DeviceToken.objects.get(user=user)
    body = response.json()
    assert body == {
        "id": user.pk,
        "username": "alice",
        "display_name": "Alice Cooks",
        "token": body["token"],
        "expiry": _iso(token.expiry),
    }
    assert len(body["token"]) == 64
    assert token.token_key == body["token"][:15]
    assert (token.device_id, token.user_agent) == ("phone-1", "ChorusApp/1.0")
    assert token.expiry > timezone.now() + settings.REST_KNOX["TOKEN_TTL"] - timedelta(hours=1)
    assert user.check_password(PASSWORD)
    assert user.display_name == "Alice Cooks"
    assert not user.is_staff
    # the token works
    me = _bearer(APIClient(), body["token"]).get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["id"] == user.pk


def test_register_without_display_name_uses_the_username(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/auth/register", {"username": "bob_1", "password": PASSWORD})

    assert response.status_code == 201
    assert response.json()["display_name"] == "bob_1"
    assert User.objects.get(username="bob_1").display_name == "bob_1"


def test_register_a_long_username_without_display_name(api_client: APIClient) -> None:
    # usernames may have 150 characters, display names 64
    username = "u" * 150

    response = api_client.post(
        "/api/v1/auth/register", {"username": username, "password": PASSWORD}
    )

    assert response.status_code == 201
    assert response.json()["display_name"] == "u" * 64
    assert User.objects.get(username=username).display_name == "u" * 64


def test_register_a_taken_username_is_refused_whatever_its_case(api_client: APIClient) -> None:
    UserFactory.create(username="alice")
    before = database_state()

    response = api_client.post("/api/v1/auth/register", {"username": "ALICE", "password": PASSWORD})

    assert_problem(
        response,
        400,
        "invalid",
        "Invalid input: username: A user with that username already exists.",
        errors={"username": ["A user with that username already exists."]},
    )
    assert database_state() == before


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            {
                "username": ["This field is required."],
                "password": ["This field is required."],
            },
        ),
        (
            {"username": "ab", "password": PASSWORD},
            {"username": ["Ensure this field has at least 3 characters."]},
        ),
        (
            {"username": "x" * 151, "password": PASSWORD},
            {"username": ["Ensure this field has no more than 150 characters."]},
        ),
        (
            {"username": "x" * 1_000_000, "password": PASSWORD},
            {"username": ["Ensure this field has no more than 150 characters."]},
        ),
        (
            {"username": "bad name!", "password": PASSWORD},
            {
                "username": [
                    "Enter a valid username. This value may contain only letters, numbers, "
                    "and @/./+/-/_ characters."
                ]
            },
        ),
        (
            {"username": "carol", "password": "short"},
            {"password": ["Ensure this field has at least 8 characters."]},
        ),
        (
            {"username": "carol", "password": "p" * 129},
            {"password": ["Ensure this field has no more than 128 characters."]},
        ),
        (
            {"username": 123, "password": 12345678, "display_name": ["x"]},
            {
                "username": ["Must be a string."],
                "password": ["Must be a string."],
                "display_name": ["Must be a string."],
            },
        ),
        (
            {"username": "carol", "password": PASSWORD, "display_name": "d" * 65},
            {"display_name": ["Ensure this field has no more than 64 characters."]},
        ),
    ],
)
def test_register_refuses_bad_input(
    api_client: APIClient, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    before = database_state()

    response = api_client.post("/api/v1/auth/register", body)

    detail = "Invalid input: " + "; ".join(f"{name}: {errors[name][0]}" for name in errors)
    assert_problem(response, 400, "invalid", detail, errors=errors)
    assert database_state() == before


@pytest.mark.parametrize(
    ("username", "password", "messages"),
    [
        ("dave", "password123", ["This password is too common."]),
        ("dave", "8472619305", ["This password is entirely numeric."]),
        ("davesmith", "davesmith1", ["The password is too similar to the username."]),
    ],
)
def test_register_refuses_weak_passwords(
    api_client: APIClient, username: str, password: str, messages: list[str]
) -> None:
    before = database_state()

    response = api_client.post(
        "/api/v1/auth/register", {"username": username, "password": password}
    )

    assert_problem(
        response, 400, "invalid", "The password is not acceptable.", errors={"password": messages}
    )
    assert database_state() == before


def test_register_needs_no_token_and_ignores_a_bad_one(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/auth/register",
        {"username": "erin", "password": PASSWORD},
        HTTP_AUTHORIZATION="Bearer not-a-token",
    )

    assert response.status_code == 201


# --- token (login) ------------------------------------------------------------------------------
def test_login_issues_a_new_token_per_device(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    user = UserFactory.create()
    existing, _ = DeviceToken.objects.create(user=user, device_id="tablet")

    # the user, then in one atomic block (BEGIN/COMMIT or savepoints): the user's device
    # tokens (under the limit: none revoked), the new token
    with django_assert_num_queries(5):
        response = api_client.post(
            "/api/v1/auth/token",
            {"username": user.username, "password": PASSWORD},
            HTTP_X_DEVICE_ID="phone-2",
        )

    assert response.status_code == 200
    body = response.json()
    new_token = DeviceToken.objects.exclude(pk=existing.pk).get(user=user)
    assert body == {"token": body["token"], "expiry": _iso(new_token.expiry)}
    assert new_token.device_id == "phone-2"
    assert DeviceToken.objects.filter(user=user).count() == 2
    assert _bearer(APIClient(), body["token"]).get("/api/v1/me").json()["id"] == user.pk


def test_login_past_the_device_limit_revokes_the_oldest_tokens(
    api_client: APIClient, settings: Any, django_assert_num_queries: Callable[..., Any]
) -> None:
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_LIMIT_PER_USER": 3}
    user = UserFactory.create()
    old = [DeviceToken.objects.create(user=user, device_id=f"d{i}")[0] for i in range(3)]
    DeviceToken.objects.filter(pk=old[0].pk).update(created=timezone.now() - timedelta(days=3))
    DeviceToken.objects.filter(pk=old[1].pk).update(created=timezone.now() - timedelta(days=2))

    # as a login under the limit, and one DELETE of the oldest tokens
    with django_assert_num_queries(6):
        response = api_client.post(
            "/api/v1/auth/token", {"username": user.username, "password": PASSWORD}
        )

    assert response.status_code == 200
    remaining = set(DeviceToken.objects.filter(user=user).values_list("device_id", flat=True))
    # the limit holds: the two newest old devices and the new one; the oldest was revoked
    assert remaining == {"d1", "d2", ""}
    assert not DeviceToken.objects.filter(pk=old[0].pk).exists()


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "{user}", "password": "wrong-password"},
        {"username": "nobody-by-this-name", "password": PASSWORD},
        {"username": "{user}", "password": PASSWORD.upper()},
    ],
)
def test_login_with_bad_credentials_is_refused(
    api_client: APIClient, credentials: dict[str, str]
) -> None:
    user = UserFactory.create()
    body = {name: value.format(user=user.username) for name, value in credentials.items()}
    before = database_state()

    response = api_client.post("/api/v1/auth/token", body)

    assert_problem(
        response,
        400,
        "invalid_credentials",
        "Unable to log in with the provided credentials.",
    )
    assert database_state() == before


def test_login_of_a_deactivated_user_is_refused(api_client: APIClient) -> None:
    user = UserFactory.create(is_active=False)
    before = database_state()

    response = api_client.post(
        "/api/v1/auth/token", {"username": user.username, "password": PASSWORD}
    )

    assert_problem(
        response,
        400,
        "invalid_credentials",
        "Unable to log in with the provided credentials.",
    )
    assert database_state() == before


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"username": ["This field is required."], "password": ["This field is required."]}),
        ({"username": ["a"], "password": PASSWORD}, {"username": ["Must be a string."]}),
        (
            {"username": "u", "password": "p" * 10_000},
            {"password": ["Ensure this field has no more than 128 characters."]},
        ),
    ],
)
def test_login_refuses_bad_input(
    api_client: APIClient, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    before = database_state()

    response = api_client.post("/api/v1/auth/token", body)

    detail = "Invalid input: " + "; ".join(f"{name}: {errors[name][0]}" for name in errors)
    assert_problem(response, 400, "invalid", detail, errors=errors)
    assert database_state() == before


# --- logout -------------------------------------------------------------------------------------
def test_logout_revokes_only_the_presented_token(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    user = UserFactory.create()
    _, phone_token = DeviceToken.objects.create(user=user, device_id="phone")
    tablet, tablet_token = DeviceToken.objects.create(user=user, device_id="tablet")

    with django_assert_num_queries(2):  # the device token (with its user), its DELETE
        response = _bearer(api_client, phone_token).post("/api/v1/auth/logout")

    assert response.status_code == 204
    assert response.content == b""
    assert list(DeviceToken.objects.filter(user=user).values_list("pk", flat=True)) == [tablet.pk]
    assert_problem(api_client.get("/api/v1/me"), 401, "authentication_failed", "Invalid token.")
    assert _bearer(APIClient(), tablet_token).get("/api/v1/me").status_code == 200


def test_logout_all_revokes_every_token_of_the_user_only(
    api_client: APIClient, django_assert_num_queries: Callable[..., Any]
) -> None:
    user, other = UserFactory.create(), UserFactory.create()
    _, token = DeviceToken.objects.create(user=user)
    DeviceToken.objects.create(user=user)
    DeviceToken.objects.create(other)

    with django_assert_num_queries(2):  # the device token (with its user), one DELETE of all
        response = _bearer(api_client, token).post("/api/v1/auth/logout-all")

    assert response.status_code == 204
    assert DeviceToken.objects.filter(user=user).count() == 0
    assert DeviceToken.objects.filter(user=other).count() == 1


@pytest.mark.parametrize("path", ["/api/v1/auth/logout", "/api/v1/auth/logout-all"])
def test_logout_without_a_token_is_401(
    api_client: APIClient, path: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    UserFactory.create()
    before = database_state()

    with django_assert_num_queries(0):  # no token: refused before any query
        response = api_client.post(path)

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
    assert database_state() == before


# --- me -----------------------------------------------------------------------------------------
def test_me_returns_the_callers_profile(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    user = UserFactory.create(username="frank", display_name="Frank")
    client = make_client(user)

    with django_assert_num_queries(1):  # the device token with its user: the profile
        response = client.get("/api/v1/me")

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": "frank",
        "display_name": "Frank",
        "is_staff": False,
        "joined_at": _iso(user.date_joined),
    }


def test_me_of_staff_says_so(make_client: Callable[..., APIClient]) -> None:
    user = UserFactory.create(is_staff=True)

    assert make_client(user).get("/api/v1/me").json()["is_staff"] is True


def test_me_patch_changes_the_display_name_only(
    make_client: Callable[..., APIClient], django_assert_num_queries: Callable[..., Any]
) -> None:
    user = UserFactory.create(username="grace", display_name="Grace")
    client = make_client(user)

    with django_assert_num_queries(2):  # the device token (with its user), the UPDATE
        response = client.patch(
            "/api/v1/me", {"display_name": "Grace H.", "username": "hacker", "is_staff": True}
        )

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": "grace",
        "display_name": "Grace H.",
        "is_staff": False,
        "joined_at": _iso(user.date_joined),
    }
    user.refresh_from_db()
    assert (user.username, user.display_name, user.is_staff) == ("grace", "Grace H.", False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"display_name": ""}, "This field may not be blank."),
        ({"display_name": "   "}, "This field may not be blank."),
        ({"display_name": 5}, "Must be a string."),
        ({"display_name": None}, "This field may not be null."),
        ({"display_name": "d" * 100_000}, "Ensure this field has no more than 64 characters."),
    ],
)
def test_me_patch_refuses_bad_input(
    make_client: Callable[..., APIClient], body: dict[str, Any], message: str
) -> None:
    user = UserFactory.create(display_name="Unchanged")
    client = make_client(user)
    before = database_state()

    response = client.patch("/api/v1/me", body)

    assert_problem(
        response,
        400,
        "invalid",
        f"Invalid input: display_name: {message}",
        errors={"display_name": [message]},
    )
    assert database_state() == before
    user.refresh_from_db()
    assert user.display_name == "Unchanged"


@pytest.mark.parametrize("method", ["get", "patch"])
def test_me_without_a_token_is_401(
    api_client: APIClient, method: str, django_assert_num_queries: Callable[..., Any]
) -> None:
    with django_assert_num_queries(0):  # no token: refused before any query
        response = getattr(api_client, method)("/api/v1/me", {"display_name": "x"})

    assert_problem(
        response, 401, "not_authenticated", "Authentication credentials were not provided."
    )
