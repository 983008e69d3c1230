"""Who is calling from where: the client IP and the `X-Device-Id` stored with interactions."""

import re
from dataclasses import dataclass

from django.http import HttpRequest
from rest_framework.request import Request

from core.exceptions import InvalidInput

DEVICE_ID_HEADER = "HTTP_X_DEVICE_ID"
DEVICE_ID_MAX_LENGTH = 128
_DEVICE_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(frozen=True)
class ClientInfo:
    ip: str | None
    device_id: str


def client_ip(request: HttpRequest | Request, num_proxies: int = 0) -> str | None:
    meta = request.META
    if num_proxies > 0:
        forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
        addresses = [part.strip() for part in forwarded.split(",") if part.strip()]
        if addresses:
            return addresses[-min(num_proxies, len(addresses))]
    return meta.get("REMOTE_ADDR") or None


def client_info(request: HttpRequest | Request) -> ClientInfo:
    """The caller's IP and device id; an unusable `X-Device-Id` is refused with 400."""
    from rest_framework.settings import api_settings

    device_id = request.META.get(DEVICE_ID_HEADER, "")
    if device_id and not _DEVICE_ID_RE.match(device_id):
        raise InvalidInput(
            "X-Device-Id must be 1-128 printable ASCII characters without spaces.",
            code="invalid_device_id",
            errors={"X-Device-Id": ["1-128 printable ASCII characters without spaces."]},
        )
    return ClientInfo(ip=client_ip(request, api_settings.NUM_PROXIES or 0), device_id=device_id)
