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
"""

from typing import Any

from django.core.cache import cache, caches

META_TTL = 300
TALLY_TTL = 120
VERSION_TTL = 30 * 24 * 3600


def _version_key(sticker_id: int) -> str:
    return f"polls:ver:{sticker_id}"


def meta_key(sticker_id: int) -> str:
    return f"polls:meta:{sticker_id}"


def tally_key(sticker_id: int) -> str:
    return f"polls:tally:{sticker_id}"


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


def results_cache_read(sticker_id: int) -> tuple[int, Any, Any]:
    """(version, meta, tally) as cached for the current version, in one round trip."""
    keys = _keys(sticker_id)
    found = cache.get_many(keys)
    version = int(found.get(keys[0]) or 0)
    return version, _current(found.get(keys[1]), version), _current(found.get(keys[2]), version)


def results_cache_stage(pipe: Any, sticker_id: int) -> None:
    """Stage the MGET of results_cache_read on another round trip (core.redis_round_trip or a
    redis-py pipeline: the throttle's)."""
    default = caches["default"]  # (one lookup of the thread's cache, not one per key)
    pipe.mget([default.make_key(key) for key in _keys(sticker_id)])


def results_cache_decode(raw: list[bytes | None]) -> tuple[int, Any, Any]:
    """What results_cache_read returns, from the reply of results_cache_stage."""
    client = cache.client  # type: ignore[attr-defined]
    values = [None if value is None else client.decode(value) for value in raw]
    version = int(values[0] or 0)
    return version, _current(values[1], version), _current(values[2], version)


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
