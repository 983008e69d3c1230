"""Device tokens on every request (core.authentication) keep knox's guarantees: hashed at rest,
revocation effective on the next request, expiry enforced and renewed, inactive users refused
(whatever reads the token: issue 11 makes that read cheaper)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from engagement.models import DeviceToken, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _issue(user: User) -> tuple[DeviceToken, str]:
    return DeviceToken.objects.create(user=user, device_id="d")


def test_a_token_authenticates_its_user_with_every_field_loaded() -> None:
    user = UserFactory.create(username="ada", email="ada@example.com")
    _, token = _issue(user)
    response = _client(token).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["username"] == "ada"
    # hashed at rest: the stored digest is not the token
    stored = DeviceToken.objects.get(user=user)
    assert token not in (stored.digest, stored.token_key)


def test_a_revoked_token_is_refused_on_the_next_request() -> None:
    auth_token, token = _issue(UserFactory.create())
    client = _client(token)
    assert client.get("/api/v1/me").status_code == 200
    auth_token.delete()
    assert client.get("/api/v1/me").status_code == 401


def test_a_token_with_the_right_key_and_a_wrong_rest_is_refused() -> None:
    _, token = _issue(UserFactory.create())
    forged = token[:15] + ("0" if token[15] != "0" else "1") + token[16:]
    assert _client(forged).get("/api/v1/me").status_code == 401


def test_an_expired_token_is_refused_and_deleted() -> None:
    auth_token, token = _issue(UserFactory.create())
    DeviceToken.objects.filter(pk=auth_token.pk).update(
        expiry=timezone.now() - timedelta(seconds=1)
    )
    assert _client(token).get("/api/v1/me").status_code == 401
    assert not DeviceToken.objects.filter(pk=auth_token.pk).exists()


def test_an_inactive_user_s_token_is_refused() -> None:
    user = UserFactory.create()
    _, token = _issue(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert _client(token).get("/api/v1/me").status_code == 401


def test_the_expiry_is_renewed_at_most_once_an_hour() -> None:
    auth_token, token = _issue(UserFactory.create())
    ttl = settings.REST_KNOX["TOKEN_TTL"]
    client = _client(token)
    # renewed half an hour ago: left as it is
    recent = timezone.now() + ttl - timedelta(minutes=30)
    DeviceToken.objects.filter(pk=auth_token.pk).update(expiry=recent)
    assert client.get("/api/v1/me").status_code == 200
    assert DeviceToken.objects.get(pk=auth_token.pk).expiry == recent
    # renewed two hours ago: moved to a full lifetime from now
    old = timezone.now() + ttl - timedelta(hours=2)
    DeviceToken.objects.filter(pk=auth_token.pk).update(expiry=old)
    before = timezone.now()
    assert client.get("/api/v1/me").status_code == 200
    assert DeviceToken.objects.get(pk=auth_token.pk).expiry >= before + ttl
