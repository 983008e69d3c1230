import re

from django.utils.translation import gettext_lazy as _
from knox.auth import TokenAuthentication
from knox.models import AbstractAuthToken
from rest_framework import exceptions

# knox tokens are hex; anything that is not printable ASCII (undecodable bytes, NUL) is refused
# before it reaches the database.
_TOKEN_RE = re.compile(rb"^[\x21-\x7e]+$")


class BearerTokenAuthentication(TokenAuthentication):
    """knox device tokens sent as `Authorization: Bearer <token>`.

    knox checks every other token of the user for expiry on each request (one more query per
    request); expired tokens are purged by a periodic task instead, so only the presented token
    is checked here.
    """

    def authenticate_credentials(self, token: bytes) -> tuple:
        if not _TOKEN_RE.match(token):
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token: AbstractAuthToken) -> bool:
        from django.utils import timezone

        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False
