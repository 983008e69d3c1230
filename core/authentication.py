from knox.auth import TokenAuthentication
from knox.models import AbstractAuthToken


class BearerTokenAuthentication(TokenAuthentication):
    """knox device tokens sent as `Authorization: Bearer <token>`.

    knox checks every other token of the user for expiry on each request (one more query per
    request); expired tokens are purged by a periodic task instead, so only the presented token
    is checked here.
    """

    def _cleanup_token(self, auth_token: AbstractAuthToken) -> bool:
        from django.utils import timezone

        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False
