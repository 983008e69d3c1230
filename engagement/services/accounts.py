"""Registration, device tokens, profile."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.exceptions import InvalidInput
from engagement.models import DeviceToken, User


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expiry: datetime | None
    user: User


def _token_issue(*, user: User, device_id: str, user_agent: str) -> IssuedToken:
    # One token per device; past the per-user limit the least recently issued ones are revoked.
    limit = settings.REST_KNOX.get("TOKEN_LIMIT_PER_USER")
    if limit:
        stale = list(
            DeviceToken.objects.filter(user=user)
            .order_by("-created")
            .values_list("digest", flat=True)[limit - 1 :]
        )
        if stale:
            DeviceToken.objects.filter(digest__in=stale).delete()
    instance, token = DeviceToken.objects.create(
        user=user, device_id=device_id, user_agent=user_agent[:256]
    )
    return IssuedToken(token=token, expiry=instance.expiry, user=user)


def user_register(
    *,
    username: str,
    password: str,
    display_name: str = "",
    device_id: str = "",
    user_agent: str = "",
) -> IssuedToken:
    # The display name defaults to the username, which may be longer than a display name.
    max_length = User._meta.get_field("display_name").max_length
    candidate = User(username=username, display_name=display_name or username[:max_length])
    try:
        validate_password(password, user=candidate)
    except ValidationError as error:
        raise InvalidInput(
            "The password is not acceptable.",
            code="invalid",
            errors={"password": list(error.messages)},
        ) from None
    try:
        with transaction.atomic():
            candidate.set_password(password)
            candidate.save()
            return _token_issue(user=candidate, device_id=device_id, user_agent=user_agent)
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name.
        raise InvalidInput(
            "Invalid input: username: a user with that username already exists.",
            errors={"username": ["A user with that username already exists."]},
        ) from None


def token_login(
    *, username: str, password: str, device_id: str = "", user_agent: str = ""
) -> IssuedToken:
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise InvalidInput(
            "Unable to log in with the provided credentials.", code="invalid_credentials"
        )
    assert isinstance(user, User)
    with transaction.atomic():
        return _token_issue(user=user, device_id=device_id, user_agent=user_agent)


def token_revoke(*, token: DeviceToken) -> None:
    token.delete()


def tokens_revoke_all(*, user: User) -> int:
    deleted, _ = DeviceToken.objects.filter(user=user).delete()
    return deleted


def user_update_profile(*, user: User, display_name: str) -> User:
    user.display_name = display_name
    user.save(update_fields=["display_name"])
    return user


def tokens_expired_purge() -> int:
    from django.utils import timezone

    deleted, _ = DeviceToken.objects.filter(expiry__lt=timezone.now()).delete()
    return deleted
