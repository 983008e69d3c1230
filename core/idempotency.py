"""`Idempotency-Key` for POSTs (SPEC §2.2).

Same key and same caller: the first answer is replayed. Same key with a different request:
409 `idempotency_key_reused`. The same key while the first request is still running: 409
`idempotency_key_in_use` (exactly one of concurrent requests runs). Keys are kept for
IDEMPOTENCY_KEY_TTL; a request whose process died leaves its key blocked for
IDEMPOTENCY_STALE_AFTER, after which a retry runs again.
"""

import hashlib
import json
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from core.db import insert_ignoring_conflict
from core.exceptions import Conflict, InvalidInput
from core.models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_REPLAYED_HEADERS = ("Location",)


@dataclass
class IdempotencyClaim:
    record_id: int


class IdempotentReplay(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def request_fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() if request.method else b"")
    digest.update(b"\0")
    digest.update(request.get_full_path().encode())
    digest.update(b"\0")
    digest.update(request._request.body)
    return digest.hexdigest()


def idempotency_claim(request: Request) -> IdempotencyClaim | None:
    """Claim the request's key, or raise IdempotentReplay / Conflict. None when no key is sent."""
    key = request.META.get(HEADER)
    if key is None or request.method != "POST" or not request.user.is_authenticated:
        return None
    if not _KEY_RE.match(key):
        raise InvalidInput(
            "Idempotency-Key must be 1-255 printable ASCII characters.",
            code="invalid_idempotency_key",
            errors={"Idempotency-Key": ["1-255 printable ASCII characters."]},
        )
    fingerprint = request_fingerprint(request)
    now = timezone.now()
    for _attempt in range(2):
        # One statement: claimed, or taken. (A concurrent claim of the same key that has not
        # committed yet makes this wait for it, then see its answer.)
        record_id = insert_ignoring_conflict(
            IdempotencyRecord,
            {
                "user": request.user.pk,
                "key": key,
                "request_fingerprint": fingerprint,
                "state": IdempotencyRecord.State.IN_PROGRESS,
                "response_body": "",
                "response_headers": {},
                "created_at": now,
            },
            ["user", "key"],
        )
        if record_id is not None:
            return IdempotencyClaim(record_id=record_id)
        existing = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
        if existing is None:
            continue  # it was purged between our insert and our read; try once more
        if existing.request_fingerprint != fingerprint:
            raise Conflict(
                "This Idempotency-Key was used for a different request.",
                code="idempotency_key_reused",
            )
        if existing.state == IdempotencyRecord.State.COMPLETED:
            if existing.created_at < now - settings.IDEMPOTENCY_KEY_TTL:
                existing.delete()
                continue
            headers = dict(existing.response_headers)
            # Replayed errors stay problem documents (application/problem+json).
            content_type = headers.pop("Content-Type", None)
            response = Response(
                json.loads(existing.response_body) if existing.response_body else None,
                status=existing.response_status,
                headers={**headers, "Idempotent-Replayed": "true"},
                content_type=content_type,
            )
            raise IdempotentReplay(response)
        if existing.created_at < now - settings.IDEMPOTENCY_STALE_AFTER:
            # The process that claimed it died before answering; let this retry take over.
            IdempotencyRecord.objects.filter(pk=existing.pk, state=existing.state).delete()
            continue
        raise Conflict(
            "A request with this Idempotency-Key is still being processed.",
            code="idempotency_key_in_use",
        )
    raise Conflict(
        "A request with this Idempotency-Key is still being processed.",
        code="idempotency_key_in_use",
    )


def idempotency_complete(claim: IdempotencyClaim, response: Response) -> None:
    if response.status_code >= 500:
        IdempotencyRecord.objects.filter(pk=claim.record_id).delete()
        return
    headers = {name: response[name] for name in _REPLAYED_HEADERS if response.has_header(name)}
    if response.content_type:
        headers["Content-Type"] = response.content_type
    body = "" if response.data is None else json.dumps(response.data, cls=DjangoJSONEncoder)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {IdempotencyRecord._meta.db_table} SET state = %s, response_status = %s, "
            f"response_body = %s, response_headers = %s::jsonb, completed_at = %s WHERE id = %s",
            [
                IdempotencyRecord.State.COMPLETED,
                response.status_code,
                body,
                json.dumps(headers),
                timezone.now(),
                claim.record_id,
            ],
        )


def idempotency_keys_purge() -> int:
    cutoff = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
