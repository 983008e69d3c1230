"""The results cache: Redis copies of what a results read needs, the sticker's metadata and its
latest tally.

Both are rebuilt from PostgreSQL on a miss (polls.services.results). Each copy carries the
sticker's cache version; a write that changes the sticker bumps the version after commit. A read
fetches the version and both copies in one round trip and ignores a copy of another version, so
a read that loaded the old row just before a commit and stores it late stores something nobody
will use (deleting the key instead would let that late write put stale data back).

The results endpoint does not even pay that round trip of its own: its throttle sends the read
with its rate counters (`results_cache_stage` on the throttle's round trip, `results_cache_decode`
of the replies; polls.api.views.ResultsView). `results_cache_read` is the same read on its own.

Decoding the copies is most of what a results read does besides its round trips, and a hot
sticker's copies change a few times a second while it is read hundreds of times: each process
keeps what it decoded for the last DECODED_KEPT replies, keyed by the exact bytes Redis sent (a
changed copy is other bytes, so nothing is ever served from a stale decode), with a digest of
the content (`results_stamp`; the results ETag includes it).
"""

import hashlib
import json
from functools import lru_cache
from typing import Any, NamedTuple

from django.core.cache import cache, caches

META_TTL = 300
DECODED_KEPT = 1024
TALLY_TTL = 120
VERSION_TTL = 30 * 24 * 3600


def _version_key(sticker_id: int) -> str:
    return f"polls:ver:{sticker_id}"


def meta_key(sticker_id: int) -> str:
    return f"polls:meta:{sticker_id}"


def tally_key(sticker_id: int) -> str:
    return f"polls:tally:{sticker_id}"


class CachedResults(NamedTuple):
    """What the results cache holds for a sticker's current version: its metadata and tally,
    each None when not cached for that version."""

    version: int
    meta: Any
    tally: Any
    # results_stamp of both, when both were there (else None). Read-only, like the decoded
    # values: shared between requests.
    stamp: str | None


def sticker_cache_version(sticker_id: int) -> int:
    return int(cache.get(_version_key(sticker_id)) or 0)


def sticker_cache_forget(sticker_id: int) -> None:
    """Call after commit of any change to the sticker, its options or its final result."""
    key = _version_key(sticker_id)
    try:
        cache.incr(key)
    except ValueError:  # no version yet
        cache.set(key, 1, VERSION_TTL)


def _current(entry: Any, version: int) -> Any:
    if isinstance(entry, dict) and entry.get("version") == version:
        return entry["value"]
    return None


def _keys(sticker_id: int) -> list[str]:
    return [_version_key(sticker_id), meta_key(sticker_id), tally_key(sticker_id)]


def results_cache_read(sticker_id: int) -> CachedResults:
    """What is cached for the sticker's current version, in one round trip (without a stamp)."""
    keys = _keys(sticker_id)
    found = cache.get_many(keys)
    version = int(found.get(keys[0]) or 0)
    return CachedResults(
        version, _current(found.get(keys[1]), version), _current(found.get(keys[2]), version), None
    )


def results_cache_stage(pipe: Any, sticker_id: int) -> None:
    """Stage the MGET of results_cache_read on another round trip (core.redis_round_trip or a
    redis-py pipeline: the throttle's)."""
    default = caches["default"]  # (one lookup of the thread's cache, not one per key)
    pipe.mget([default.make_key(key) for key in _keys(sticker_id)])


def results_cache_decode(raw: list[bytes | None]) -> CachedResults:
    """What results_cache_read returns, from the reply of results_cache_stage, with its stamp.
    The same bytes give the same objects, shared by every request that read them: read-only."""
    return _decoded(*raw)


@lru_cache(maxsize=DECODED_KEPT)
def _decoded(
    raw_version: bytes | None, raw_meta: bytes | None, raw_tally: bytes | None
) -> CachedResults:
    client = cache.client  # type: ignore[attr-defined]
    version = int(client.decode(raw_version) if raw_version is not None else 0)
    meta = _current(client.decode(raw_meta), version) if raw_meta is not None else None
    tally = _current(client.decode(raw_tally), version) if raw_tally is not None else None
    stamp = results_stamp(meta, tally) if meta is not None and tally is not None else None
    return CachedResults(version, meta, tally, stamp)


def results_stamp(meta: dict[str, Any], tally: dict[str, Any]) -> str:
    """A digest of a sticker's results metadata and tally: equal stamps, equal content."""
    content = json.dumps([meta, tally], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(content.encode(), digest_size=10).hexdigest()


def meta_store(sticker_id: int, version: int, meta: dict[str, Any]) -> None:
    cache.set(meta_key(sticker_id), {"version": version, "value": meta}, META_TTL)


def tally_store(sticker_id: int, tally: dict[str, Any], version: int | None = None) -> None:
    if version is None:
        version = sticker_cache_version(sticker_id)
    cache.set(tally_key(sticker_id), {"version": version, "value": tally}, TALLY_TTL)


def tallies_store(tallies: dict[int, dict[str, Any]]) -> None:
    """Store many live tallies, each under its sticker's current version (two round trips)."""
    if not tallies:
        return
    versions = cache.get_many([_version_key(sticker_id) for sticker_id in tallies])
    cache.set_many(
        {
            tally_key(sticker_id): {
                "version": int(versions.get(_version_key(sticker_id)) or 0),
                "value": tally,
            }
            for sticker_id, tally in tallies.items()
        },
        TALLY_TTL,
    )
