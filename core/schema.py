"""OpenAPI extensions: how drf-spectacular describes our own authentication class."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <token>`, so generated clients know how to authenticate."""

    target_class = "core.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A device token from POST /api/v1/auth/register or /auth/token.",
        }
