"""Device tokens (knox) on every request, read with their user in one prepared statement.

knox stores a token's SHA-512 digest as the token row's primary key. It reads the rows with the
token's first characters through the ORM, then its user (`select_related`), and compares the
digests. Every authenticated request pays that read, so it is the hot path's biggest fixed cost
(docs/benchmarks.md, "What a request costs"): building the join through the ORM cost more CPU
than the round trip. Here the digest is computed first and the token row is read by it, with
its user, in one server-side prepared statement composed once from the two models; then knox's
own checks run in knox's order: expiry (an expired token is deleted and refused), the digest
compared in constant time, the expiry renewed at most once an hour (AUTO_REFRESH), the user
active. So tokens stay hashed at rest, a revoked (deleted) token fails on the next request,
expiry is enforced.
"""

import binascii
import re
from dataclasses import dataclass
from functools import cache
from hmac import compare_digest
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AbstractAuthToken, get_token_model
from knox.settings import knox_settings
from knox.signals import token_expired
from rest_framework import exceptions

from core.db import fetch_prepared

# knox tokens are hex; anything that is not printable ASCII (undecodable bytes, NUL) is refused
# before it reaches the database.
_TOKEN_RE = re.compile(rb"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class _TokenRead:
    """`SELECT <token's columns>, <user's columns> … WHERE digest = %s` and how to make the two
    instances of its row: composed once from the models."""

    sql: str
    token_model: type[Model]
    token_attnames: list[str]
    user_model: type[Model]
    user_attnames: list[str]

    def instances(self, row: tuple[Any, ...]) -> Any:
        """The token of the row, with its user."""
        split = len(self.token_attnames)
        auth_token = self.token_model.from_db(DEFAULT_DB_ALIAS, self.token_attnames, row[:split])
        auth_token.user = self.user_model.from_db(  # type: ignore[attr-defined]
            DEFAULT_DB_ALIAS, self.user_attnames, row[split:]
        )
        return auth_token


@cache
def _token_read() -> _TokenRead:
    token_model, user_model = get_token_model(), get_user_model()
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    token_fields = token_model._meta.concrete_fields
    user_fields = user_model._meta.concrete_fields
    columns = [f"t.{quote(f.column)}" for f in token_fields]
    columns += [f"u.{quote(f.column)}" for f in user_fields]
    user_fk = token_model._meta.get_field("user")
    sql = (
        f"SELECT {', '.join(columns)} "
        f"FROM {quote(token_model._meta.db_table)} t "
        f"JOIN {quote(user_model._meta.db_table)} u "
        f"ON u.{quote(user_model._meta.pk.column)} = t.{quote(user_fk.column)} "  # type: ignore[union-attr]
        f"WHERE t.{quote(token_model._meta.pk.column)} = %s"  # type: ignore[union-attr]
    )
    return _TokenRead(
        sql,
        token_model,
        [f.attname for f in token_fields],
        user_model,
        [f.attname for f in user_fields],
    )


class BearerTokenAuthentication(TokenAuthentication):
    """knox device tokens sent as `Authorization: Bearer <token>`.

    knox also checks every other token of the user for expiry on each request (one more query
    per request); expired tokens are purged by a periodic task instead, so only the presented
    token is checked here.
    """

    def authenticate_credentials(self, token: bytes) -> tuple:
        message = _("Invalid token.")
        if not _TOKEN_RE.match(token):
            raise exceptions.AuthenticationFailed(message)
        text = token.decode("ascii")
        try:
            digest = hash_token(text)
        except (TypeError, binascii.Error):
            raise exceptions.AuthenticationFailed(message) from None
        read = _token_read()
        rows = fetch_prepared(read.sql, [digest])
        if not rows:
            raise exceptions.AuthenticationFailed(message)
        auth_token = read.instances(rows[0])
        if self._cleanup_token(auth_token) or not compare_digest(digest, auth_token.digest):
            raise exceptions.AuthenticationFailed(message)
        if knox_settings.AUTO_REFRESH and auth_token.expiry:
            self.renew_token(auth_token)
        return self.validate_user(auth_token)

    def _cleanup_token(self, auth_token: AbstractAuthToken) -> bool:
        """An expired token is deleted (and knox's `token_expired` sent): True."""
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False
