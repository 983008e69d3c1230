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

Refresh-ahead: the same round trip marks the document *active* (a sorted set, scored by the time
of its latest serve) and arms the refresher (`analytics.tasks.refresh_analytics_documents`),
which recomputes each active document before it would stop being served, so a dashboard opened
again after a minute finds its document stored instead of waiting for one to be computed. One
refresher runs at a time: the flag `REFRESHER_FLAG` holds the token of the run that is queued
(or running), each run queues the next one a tick later while some document is active, and a
serve arms a new one only when the flag is not there.
"""

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from core.enqueue import enqueue_flag_key, task_send
from core.versions import versions_move

# A creator's data version and the epoch every version is read with; the epoch moves when all
# documents are outdated at once (a rebuild, a reconciliation that repaired something).
_VERSION_KEY = "analytics:docv:{creator}"
EPOCH_KEY = "analytics:docv:epoch"
_DOCUMENT_KEY = "analytics:doc:{kind}:{scope}:{days}:{tz}"
# How long an outdated document may still be served while one request computes its successor.
REFRESH_SECONDS = 10
# How long a request with nothing to serve waits for the one computing the document.
WAIT_SECONDS = 2.0
# Versions outlive every document stored under them by far (see `documents_changed`).
VERSION_TTL_SECONDS = 86_400
# Refresh-ahead: DocumentKey.member() -> time of its latest serve.
_ACTIVE_KEY = "analytics:doc:active"
# The refresher's flag (core.enqueue's once-key): the token of the one refresher run queued or
# running. Long enough to outlast a tick and a busy `analytics` queue; a run that was lost (its
# worker killed) stops holding back the next serve's arming after this.
REFRESHER_FLAG = "analytics:doc:refresher"
REFRESHER_FLAG_TTL = 60
REFRESHER_TASK = "analytics.tasks.refresh_analytics_documents"
# A run refreshes what would not be served a tick plus this later: the run's own duration and
# the queue's latency until the next one.
REFRESH_MARGIN_SECONDS = 2.0
# Compare-and-delete: a run releases the flag only while it is still its own.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def fresh_seconds() -> float:
    return float(getattr(settings, "ANALYTICS_DOCUMENT_FRESH_SECONDS", 10))


def max_age_seconds() -> float:
    return float(getattr(settings, "ANALYTICS_DOCUMENT_MAX_AGE_SECONDS", 30))


def refresh_tick_seconds() -> float:
    """How often the refresher runs while some document is active (0: never)."""
    return float(getattr(settings, "ANALYTICS_DOCUMENT_REFRESH_TICK_SECONDS", 5))


def active_seconds() -> float:
    """How long after its latest serve a document is still refreshed ahead."""
    return float(getattr(settings, "ANALYTICS_DOCUMENT_ACTIVE_SECONDS", 300))


def _serves_mark_active() -> bool:
    return (
        bool(getattr(settings, "ANALYTICS_DOCUMENT_REFRESH_AHEAD", True))
        and refresh_tick_seconds() > 0
        and max_age_seconds() > 0
    )


@dataclass(frozen=True)
class DocumentKey:
    """Which document: `kind` "creator" (scope = the creator) or "video" (scope = the video);
    `creator` is whose version decides (the caller: only a video's creator may read it)."""

    kind: str
    scope: int
    creator: int
    days: int
    tz: str

    def member(self) -> str:
        """The key in the active set (time zones hold no colon; `from_member` reads it back)."""
        return f"{self.kind}:{self.scope}:{self.creator}:{self.days}:{self.tz}"

    @classmethod
    def from_member(cls, member: str) -> "DocumentKey | None":
        parts = member.split(":", 4)
        if len(parts) != 5:
            return None
        kind, scope, creator, days, tz = parts
        if kind not in ("creator", "video") or not tz:
            return None
        if not (scope.isdigit() and creator.isdigit() and days.isdigit()):
            return None
        return cls(kind=kind, scope=int(scope), creator=int(creator), days=int(days), tz=tz)

    def keys(self) -> list[str]:
        return [
            cache.make_key(EPOCH_KEY),
            cache.make_key(_VERSION_KEY.format(creator=self.creator)),
            cache.make_key(
                _DOCUMENT_KEY.format(kind=self.kind, scope=self.scope, days=self.days, tz=self.tz)
            ),
        ]


@dataclass(frozen=True)
class Cached:
    """What the cache held: the version now, and the stored envelope (or None); and, when this
    read armed the refresher, the token to send it with (`refresher_send`)."""

    version: str
    envelope: dict[str, Any] | None
    armed_token: str | None = None

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

    def servable(self, key: DocumentKey, *, now: float) -> dict[str, Any] | None:
        """The stored document when usable and `key`'s own: a video's document is stored under
        the video, and only its creator (whose version was read) is served it."""
        envelope = self.usable(now=now)
        return envelope if envelope is not None and envelope.get("creator") == key.creator else None

    def stale(self, *, now: float) -> dict[str, Any] | None:
        """The stored document, outdated by at most REFRESH_SECONDS past the rules above: what
        the other requests get while one of them computes the new one."""
        envelope = self.envelope
        if not envelope or max_age_seconds() <= 0:
            return None
        age = now - float(envelope.get("at", 0))
        return envelope if 0 <= age < max_age_seconds() + REFRESH_SECONDS else None


def cached_stage(pipe: Any, key: DocumentKey, *, serve: bool = True) -> str | None:
    """Stage the cache read on another round trip (the throttle's: core.redis_round_trip).

    For a serve it also marks the document active and arms the refresher (SET NX of its flag,
    with a new token): no extra round trip. Returns that token, for `cached_decode`.
    """
    pipe.mget(key.keys())
    if not (serve and _serves_mark_active()):
        return None
    token = uuid.uuid4().hex
    pipe.zadd(cache.make_key(_ACTIVE_KEY), {key.member(): time.time()})
    pipe.set(enqueue_flag_key(REFRESHER_FLAG), token, nx=True, ex=REFRESHER_FLAG_TTL)
    return token


def cached_decode(replies: list[Any] | None, *, token: str | None = None) -> Cached | None:
    """What `cached_stage` staged, from its replies (None: Redis could not be reached)."""
    if replies is None:
        return None
    armed = token is not None and len(replies) == 3 and bool(replies[2])
    return _cached(replies[0], armed_token=token if armed else None)


def _cached(values: list[bytes | None], *, armed_token: str | None = None) -> Cached:
    client = cache.client  # type: ignore[attr-defined]
    epoch, version, envelope = (None if value is None else client.decode(value) for value in values)
    return Cached(
        version=f"{epoch or ''}:{version or ''}",
        envelope=envelope if isinstance(envelope, dict) else None,
        armed_token=armed_token,
    )


def cached_read(key: DocumentKey, *, serve: bool = True) -> Cached | None:
    """The cache read on its own round trip (None when Redis could not be reached)."""
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        token = cached_stage(pipe, key, serve=serve)
        return cached_decode(pipe.execute(), token=token)
    except RedisError:
        return None


def cached_read_many(keys: list[DocumentKey]) -> list[Cached]:
    """The cache reads of many keys in one round trip (not serves: nothing is marked)."""
    if not keys:
        return []
    pipe = get_redis_connection("default").pipeline(transaction=False)
    for key in keys:
        cached_stage(pipe, key, serve=False)
    return [_cached(values) for values in pipe.execute()]


# --- refresh-ahead ----------------------------------------------------------------------------
def documents_active(*, now: float, limit: int) -> list[DocumentKey]:
    """The documents served within the active window, most recently served first (at most
    `limit`); older marks are dropped. Raises RedisError."""
    connection = get_redis_connection("default")
    key = cache.make_key(_ACTIVE_KEY)
    pipe = connection.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", f"({now - active_seconds()}")
    pipe.zrevrange(key, 0, limit - 1)
    _, members = pipe.execute()
    found = [(member, DocumentKey.from_member(member.decode())) for member in members]
    malformed = [member for member, document_key in found if document_key is None]
    if malformed:
        connection.zrem(key, *malformed)
    return [document_key for _, document_key in found if document_key is not None]


def documents_inactive(keys: list[DocumentKey]) -> None:
    """Stop refreshing these documents (until they are served again). Raises RedisError."""
    if keys:
        get_redis_connection("default").zrem(
            cache.make_key(_ACTIVE_KEY), *(key.member() for key in keys)
        )


def refresher_send(token: str) -> bool:
    """Queue the refresher run that holds the flag by `token`, a tick from now (the flag is
    cleared again if the broker is unreachable, so the next serve arms it)."""
    return task_send(
        REFRESHER_TASK, token, countdown=refresh_tick_seconds(), once_key=REFRESHER_FLAG
    )


def refresher_hold(token: str | None) -> str | None:
    """The token a refresher run goes on with, or None when it must stop. A run queued by a
    serve or by itself (`token`) goes on only while the flag still holds its token: a flag that
    expired, or that another run now holds, means another run keeps the refresher going (or the
    next serve will), so two never keep each other alive. A run without one (the beat's safety
    net) takes the flag when nobody holds it. Raises RedisError."""
    connection = get_redis_connection("default")
    flag = enqueue_flag_key(REFRESHER_FLAG)
    if token is None:
        token = uuid.uuid4().hex
        taken = connection.set(flag, token, nx=True, ex=REFRESHER_FLAG_TTL)
        return token if taken else None
    held = connection.get(flag)
    return token if held is not None and held.decode() == token else None


def refresher_next(token: str) -> bool:
    """After a run: queue the next one, a tick later, while some document is active (True);
    else release the flag, so that the next serve arms a new run. Raises RedisError."""
    connection = get_redis_connection("default")
    flag = enqueue_flag_key(REFRESHER_FLAG)
    if connection.zcard(cache.make_key(_ACTIVE_KEY)):
        connection.set(flag, token, ex=REFRESHER_FLAG_TTL)
        return refresher_send(token)
    connection.eval(_RELEASE, 1, flag, token)
    return False


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
        found = cached_read(key, serve=False)
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
    versions_move(
        (_VERSION_KEY.format(creator=creator) for creator in sorted(set(creator_ids))),
        VERSION_TTL_SECONDS,
    )


def documents_all_changed() -> None:
    """Every rollup may have changed (a rebuild, a repair): outdate every stored document."""
    cache.set(EPOCH_KEY, uuid.uuid4().hex, None)


def document_serve(
    key: DocumentKey, *, cached: Cached | None, compute: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], str]:
    """The document for `key` and its ETag: the stored one when usable, else computed (and
    stored under the version read before computing). While one request computes a document
    that went out of date, the others are served the outdated one (for at most
    REFRESH_SECONDS): a busy creator's dashboard costs one computation, not one per web
    process. `cached` is the read sent in the throttle's round trip, or None to read here."""
    if cached is None:
        cached = cached_read(key)
    if cached is not None and cached.armed_token is not None:
        refresher_send(cached.armed_token)
    at = time.time()
    envelope = cached.servable(key, now=at) if cached is not None else None
    if envelope is not None:
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


def document_refresh(
    key: DocumentKey, *, within: float, compute: Callable[[], dict[str, Any]]
) -> bool:
    """Compute and store `key`'s document ahead of its requests (the refresher) when the stored
    one would not be served `within` seconds from now; True when it did. Under the requests'
    claim (a document a request is computing is left to it), with the version read after the
    claim and before computing, as a request does. Raises RedisError, and what `compute`
    raises (nothing is stored then)."""
    if not _refresh_claim(key):
        return False
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        cached_stage(pipe, key, serve=False)
        found = _cached(pipe.execute()[0])
        at = time.time()
        if found.servable(key, now=at + within) is not None:
            return False  # a request refreshed it since the run read it
        document_store(key, version=found.version, at=at, document=compute())
    finally:
        _refresh_release(key)
    return True
