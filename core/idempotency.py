"""`Idempotency-Key` for POSTs (SPEC §2.2).

The vocabulary: a request's *key* (IdempotencyKey: the caller and the header's value), the
*recorded response* kept under it (an IdempotencyRecord row), and the *replay* of that response
to a request that repeats the key.

Same key and same caller: the first response is replayed. Same key with a different request:
409 `idempotency_key_reused`. Keys are kept for IDEMPOTENCY_KEY_TTL.

The response is recorded at the end of the request, in the same transaction as its effect, by one
INSERT … ON CONFLICT on (user, key): a response is on record exactly when its effect is committed.
When the key already has a live recorded response (a retry, or a concurrent request with the same
key that committed first: PostgreSQL makes the INSERT wait for it), the request's own work is
rolled back and the recorded response is replayed. So concurrent duplicates all get the one
response and exactly one effect commits, and nothing is left behind by a process that died
mid-request.

A write whose whole effect is one SQL statement can do better: it records its response in that
same statement (`InStatementRecord`), with no transaction around it; see IdempotentMixin.
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from core.db import fetch_prepared
from core.exceptions import Conflict, InvalidInput
from core.models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_REPLAYED_HEADERS = ("Location",)


@dataclass(frozen=True)
class IdempotencyKey:
    user_id: int
    key: str
    fingerprint: str


class ResponseOnRecord(Exception):
    """The request's key already has a recorded response: replay it (raised where that is found
    out)."""


@dataclass(frozen=True)
class InStatementRecord:
    """For a write that records its response in its own statement: the key, and how to render
    the response body (JSON text, exactly as the view would send it) from what the write did."""

    key: IdempotencyKey
    render: Callable[..., str]

    def sql_params(self) -> dict[str, Any]:
        """The parameters of `response_record_sql` (besides the bodies, which the write knows)."""
        return {
            "record_user": self.key.user_id,
            "record_key": self.key.key,
            "record_fingerprint": self.key.fingerprint,
            "record_cutoff": timezone.now() - settings.IDEMPOTENCY_KEY_TTL,
        }


# Parameters of the two SQL pieces below for a write made without a key (nothing to record).
NO_RECORD_PARAMS: dict[str, Any] = {
    "record_user": None,
    "record_key": None,
    "record_fingerprint": None,
    "record_cutoff": None,
}

# SQL for a write that records its response in the same statement: `RESPONSE_ON_RECORD_SQL` is a
# boolean expression (the key has a live recorded response: the write must not happen),
# `response_record_sql` a data-modifying CTE body. Its plain INSERT fails with a unique violation
# on the key when a response was recorded meanwhile (a concurrent duplicate) or an expired one was
# not purged yet, which aborts the whole statement: see `is_key_taken` and
# `idempotency_forget_expired`.
RESPONSE_ON_RECORD_SQL = f"""EXISTS (
    SELECT 1 FROM {IdempotencyRecord._meta.db_table} on_record
    WHERE on_record.user_id = %(record_user)s::bigint AND on_record.key = %(record_key)s::varchar
        AND on_record.created_at >= %(record_cutoff)s::timestamptz
)"""


def response_record_sql(*, source: str, status: str, body: str, when: str) -> str:
    """INSERT … SELECT of a recorded response: one row per row of `source` where `when` holds,
    with the `status` and `body` expressions (over `source`)."""
    return f"""
        INSERT INTO {IdempotencyRecord._meta.db_table}
            (user_id, key, request_fingerprint, response_status, response_body, response_headers,
             created_at)
        SELECT %(record_user)s::bigint, %(record_key)s::varchar, %(record_fingerprint)s::varchar,
            {status}, {body}, '{{}}'::jsonb, now()
        FROM {source}
        WHERE %(record_key)s::varchar IS NOT NULL AND ({when})
        RETURNING id
    """


def is_key_taken(error: IntegrityError) -> bool:
    """Whether a failed statement failed on the idempotency key's unique constraint."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == "idempotency_unique_user_key"


def idempotency_forget_expired(key: IdempotencyKey) -> bool:
    """Delete the key's recorded response if it expired (not purged yet). True when one was
    deleted."""
    cutoff = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(
        user_id=key.user_id, key=key.key, created_at__lt=cutoff
    ).delete()
    return deleted > 0


def request_fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() if request.method else b"")
    digest.update(b"\0")
    digest.update(request.get_full_path().encode())
    digest.update(b"\0")
    digest.update(request._request.body)
    return digest.hexdigest()


def idempotency_key(request: Request) -> IdempotencyKey | None:
    """The request's key, checked; None when the request carries none (or is not a user's POST)."""
    key = request.META.get(HEADER)
    if key is None or request.method != "POST" or not request.user.is_authenticated:
        return None
    if not _KEY_RE.match(key):
        raise InvalidInput(
            "Idempotency-Key must be 1-255 printable ASCII characters.",
            code="invalid_idempotency_key",
            errors={"Idempotency-Key": ["1-255 printable ASCII characters."]},
        )
    return IdempotencyKey(
        user_id=request.user.pk, key=key, fingerprint=request_fingerprint(request)
    )


def idempotency_record(key: IdempotencyKey, response: HttpResponse) -> bool:
    """Record a rendered response under its key. False when the key has a live recorded response
    already.

    An expired recorded response (older than IDEMPOTENCY_KEY_TTL, not purged yet) is replaced.
    """
    headers = {name: response[name] for name in _REPLAYED_HEADERS if response.has_header(name)}
    # A content type the view chose (problem documents); a plain HttpResponse (an answer the view
    # rendered itself, as JSONRenderer would) has none to keep: its replay is rendered as JSON.
    content_type = getattr(response, "content_type", None)
    if content_type:
        headers["Content-Type"] = content_type
    now = timezone.now()
    table = IdempotencyRecord._meta.db_table
    rows = fetch_prepared(
        f"INSERT INTO {table} AS record (user_id, key, request_fingerprint, response_status, "
        f"response_body, response_headers, created_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) "
        f"ON CONFLICT (user_id, key) DO UPDATE SET "
        f"request_fingerprint = EXCLUDED.request_fingerprint, "
        f"response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body, "
        f"response_headers = EXCLUDED.response_headers, created_at = EXCLUDED.created_at "
        f"WHERE record.created_at < %s "
        f"RETURNING id",
        [
            key.user_id,
            key.key,
            key.fingerprint,
            response.status_code,
            response.content.decode(),
            json.dumps(headers),
            now,
            now - settings.IDEMPOTENCY_KEY_TTL,
        ],
    )
    return bool(rows)


def idempotency_replay(key: IdempotencyKey) -> Response:
    """The response recorded for the key (after `idempotency_record` found one), to send again.

    Raises Conflict when the key was used for a different request.
    """
    existing = IdempotencyRecord.objects.get(user_id=key.user_id, key=key.key)
    if existing.request_fingerprint != key.fingerprint:
        raise Conflict(
            "This Idempotency-Key was used for a different request.",
            code="idempotency_key_reused",
        )
    headers = dict(existing.response_headers)
    # Replayed errors stay problem documents (application/problem+json).
    content_type = headers.pop("Content-Type", None)
    return Response(
        json.loads(existing.response_body) if existing.response_body else None,
        status=existing.response_status,
        headers={**headers, "Idempotent-Replayed": "true"},
        content_type=content_type,
    )


def idempotency_keys_purge() -> int:
    cutoff = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
