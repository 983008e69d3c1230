"""The creator-centre documents as the API serves them: computed from the rollups
(`analytics.selectors`) and kept in the cache for a few seconds (docs/analytics.md, "Serving").

A creator's document is the same for every request of the same (days, tz) until either the
creator's rollups change or the window slides on. So a computed document is stored in Redis
with the creator's *data version* read before it was computed, and reused:

- for `ANALYTICS_DOCUMENT_FRESH_SECONDS` (10 s) whatever happens, which bounds the work a busy
  creator's dashboard costs to one computation per 10 s and parameters;
- after that, up to `ANALYTICS_DOCUMENT_MAX_AGE_SECONDS` (30 s), only while the version has not
  moved: the analytics consumer moves it after every pass that changed one of the creator's
  rollups (`documents_changed`), and a rebuild or a reconciliation moves all of them.

While one request computes a document that went out of date, concurrent requests get the outdated
one (at most REFRESH_SECONDS longer): one computation per creator, not one per web process. So a
committed interaction shows at most consumer lag + 20 s after its commit, inside SPEC §3's 60 s,
and the document says which window it is (`window.start`/`end`, up to 40 s ago) and how fresh
(`as_of`). The version is read before the computation, so a pass committing while a document is
computed leaves it stale-marked, never current. The video document's sticker participants are read
from the polls tables, which the consumer does not watch: they trail by at most the max age too.

The cache read rides on the throttle's Redis round trip (`DocumentThrottle`), so a hit costs
no extra round trip and no query. When Redis is away every request computes; nothing fails.
"""

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

# A creator's data version and the epoch every version is read with; the epoch moves when all
# documents are outdated at once (a rebuild, a reconciliation that repaired something).
_VERSION_KEY = "analytics:docv:{creator}"
_EPOCH_KEY = "analytics:docv:epoch"
_DOCUMENT_KEY = "analytics:doc:{kind}:{scope}:{days}:{tz}"
# How long an outdated document may still be served while one request computes its successor.
REFRESH_SECONDS = 10
# How long a request with nothing to serve waits for the one computing the document.
WAIT_SECONDS = 2.0
# Versions outlive every document stored under them by far (see `documents_changed`).
VERSION_TTL_SECONDS = 86_400


def fresh_seconds() -> float:
    return float(getattr(settings, "ANALYTICS_DOCUMENT_FRESH_SECONDS", 10))


def max_age_seconds() -> float:
    return float(getattr(settings, "ANALYTICS_DOCUMENT_MAX_AGE_SECONDS", 30))


@dataclass(frozen=True)
class DocumentKey:
    """Which document: `kind` "creator" (scope = the creator) or "video" (scope = the video);
    `creator` is whose version decides (the caller: only a video's creator may read it)."""

    kind: str
    scope: int
    creator: int
    days: int
    tz: str

    def keys(self) -> list[str]:
        return [
            cache.make_key(_EPOCH_KEY),
            cache.make_key(_VERSION_KEY.format(creator=self.creator)),
            cache.make_key(
                _DOCUMENT_KEY.format(kind=self.kind, scope=self.scope, days=self.days, tz=self.tz)
            ),
        ]


@dataclass(frozen=True)
class Cached:
    """What the cache held: the version now, and the stored envelope (or None)."""

    version: str
    envelope: dict[str, Any] | None

    def usable(self, *, now: float) -> dict[str, Any] | None:
        """The stored document when the rules above allow it (else None)."""
        envelope = self.envelope
        if not envelope or max_age_seconds() <= 0:
            return None
        age = now - float(envelope.get("at", 0))
        if age < 0 or age >= max_age_seconds():
            return None
        if age < fresh_seconds() or envelope.get("version") == self.version:
            return envelope
        return None

    def stale(self, *, now: float) -> dict[str, Any] | None:
        """The stored document, outdated by at most REFRESH_SECONDS past the rules above: what
        the other requests get while one of them computes the new one."""
        envelope = self.envelope
        if not envelope or max_age_seconds() <= 0:
            return None
        age = now - float(envelope.get("at", 0))
        return envelope if 0 <= age < max_age_seconds() + REFRESH_SECONDS else None


def cached_queue(pipe: Any, key: DocumentKey) -> None:
    """Queue the cache read on another round trip's raw Redis pipeline (the throttle's)."""
    pipe.mget(key.keys())


def cached_decode(raw: list[bytes | None] | None) -> Cached | None:
    if raw is None:
        return None
    client = cache.client  # type: ignore[attr-defined]
    epoch, version, envelope = (None if value is None else client.decode(value) for value in raw)
    return Cached(
        version=f"{epoch or ''}:{version or ''}",
        envelope=envelope if isinstance(envelope, dict) else None,
    )


def cached_read(key: DocumentKey) -> Cached | None:
    """The cache read on its own round trip (None when Redis could not be reached)."""
    try:
        from django_redis import get_redis_connection

        return cached_decode(get_redis_connection("default").mget(key.keys()))
    except RedisError:
        return None


def document_store(key: DocumentKey, *, version: str, at: float, document: dict[str, Any]) -> None:
    ttl = max_age_seconds()
    if ttl <= 0:
        return
    envelope = {"version": version, "at": at, "creator": key.creator, "document": document}
    cache.set(_raw_key(key), envelope, int(ttl + REFRESH_SECONDS) + 1)


def _refresh_claim(key: DocumentKey) -> bool:
    """One request at a time computes a document (SET NX for REFRESH_SECONDS; a request that
    dies holding it only delays the next computation)."""
    return bool(cache.add(_raw_key(key) + ":computing", 1, REFRESH_SECONDS))


def _computed_elsewhere(key: DocumentKey) -> dict[str, Any] | None:
    """The document another request is computing, once stored (polled for up to WAIT_SECONDS)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.01)
        found = cached_read(key)
        envelope = found.usable(now=time.time()) if found is not None else None
        if envelope is not None:
            # someone else's video: not for this caller, who gets the 404 without waiting more
            return envelope if envelope.get("creator") == key.creator else None
    return None


def _refresh_release(key: DocumentKey) -> None:
    cache.delete(_raw_key(key) + ":computing")


def _raw_key(key: DocumentKey) -> str:
    return _DOCUMENT_KEY.format(kind=key.kind, scope=key.scope, days=key.days, tz=key.tz)


def etag_of(envelope: dict[str, Any]) -> str:
    digest = hashlib.blake2b(
        f"{envelope['version']}|{envelope['at']}|{envelope['creator']}".encode(), digest_size=12
    ).hexdigest()
    return f'"{digest}"'


def documents_changed(creator_ids: Iterable[int]) -> None:
    """The creators' rollups changed (call after the change committed): their stored documents
    are no longer current once their fresh period is over."""
    ids = sorted(set(creator_ids))
    if not ids:
        return
    token = uuid.uuid4().hex
    cache.set_many(
        {_VERSION_KEY.format(creator=creator): token for creator in ids}, VERSION_TTL_SECONDS
    )


def documents_all_changed() -> None:
    """Every rollup may have changed (a rebuild, a repair): outdate every stored document."""
    cache.set(_EPOCH_KEY, uuid.uuid4().hex, None)


def document_serve(
    key: DocumentKey, *, cached: Cached | None, compute: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], str]:
    """The document for `key` and its ETag: the stored one when usable, else computed (and
    stored under the version read before computing). While one request computes a document
    that went out of date, the others are served the outdated one (for at most
    REFRESH_SECONDS): a busy creator's dashboard costs one computation, not one per web
    process. `cached` is the piggybacked read, or None to read here."""
    if cached is None:
        cached = cached_read(key)
    at = time.time()
    envelope = cached.usable(now=at) if cached is not None else None
    if envelope is not None and envelope.get("creator") == key.creator:
        return envelope["document"], etag_of(envelope)
    stale = cached.stale(now=at) if cached is not None else None
    claimed = cached is not None and _refresh_claim(key)
    if stale is not None and stale.get("creator") == key.creator and not claimed:
        return stale["document"], etag_of(stale)
    if cached is not None and not claimed:
        # Nothing to serve and another request is computing it: wait for that one (a cold
        # start under load computes once, not once per web process).
        waited = _computed_elsewhere(key)
        if waited is not None:
            return waited["document"], etag_of(waited)
    try:
        document = compute()
    finally:
        if claimed:
            _refresh_release(key)
    version = cached.version if cached else ""
    fresh: dict[str, Any] = {"version": version, "at": at, "creator": key.creator}
    if cached is not None:
        document_store(key, version=version, at=at, document=document)
    fresh["document"] = document
    return document, etag_of(fresh)
