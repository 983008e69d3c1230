"""Redis copies of what results reads need: the sticker's metadata and its latest tally.

Both are rebuilt from PostgreSQL on a miss. Keys carry a per-sticker version: a write that
changes the sticker bumps the version after commit, so a read that loaded the old row just
before the commit stores its copy under the old version, where nobody looks any more (deleting
the key instead would let that late write put stale data back).
"""

from typing import Any

from django.core.cache import cache

META_TTL = 300
TALLY_TTL = 120
VERSION_TTL = 30 * 24 * 3600


def _version_key(sticker_id: int) -> str:
    return f"polls:ver:{sticker_id}"


def sticker_cache_version(sticker_id: int) -> int:
    return int(cache.get(_version_key(sticker_id)) or 0)


def meta_key(sticker_id: int, version: int) -> str:
    return f"polls:meta:{sticker_id}:{version}"


def tally_key(sticker_id: int, version: int) -> str:
    return f"polls:tally:{sticker_id}:{version}"


def sticker_cache_forget(sticker_id: int) -> None:
    """Call after commit of any change to the sticker, its options or its final result."""
    key = _version_key(sticker_id)
    try:
        cache.incr(key)
    except ValueError:  # no version yet
        cache.set(key, 1, VERSION_TTL)


def cached_get_many(sticker_id: int) -> tuple[int, Any, Any]:
    """(version, meta, tally) as cached for the current version."""
    version = sticker_cache_version(sticker_id)
    found = cache.get_many([meta_key(sticker_id, version), tally_key(sticker_id, version)])
    return (
        version,
        found.get(meta_key(sticker_id, version)),
        found.get(tally_key(sticker_id, version)),
    )


def meta_store(sticker_id: int, version: int, meta: dict[str, Any]) -> None:
    cache.set(meta_key(sticker_id, version), meta, META_TTL)


def tally_store(sticker_id: int, tally: dict[str, Any], version: int | None = None) -> None:
    if version is None:
        version = sticker_cache_version(sticker_id)
    cache.set(tally_key(sticker_id, version), tally, TALLY_TTL)


def tallies_store(tallies: dict[int, dict[str, Any]]) -> None:
    """Store many live tallies, each under its sticker's current version (two round trips)."""
    if not tallies:
        return
    versions = cache.get_many([_version_key(sticker_id) for sticker_id in tallies])
    cache.set_many(
        {
            tally_key(sticker_id, int(versions.get(_version_key(sticker_id)) or 0)): tally
            for sticker_id, tally in tallies.items()
        },
        TALLY_TTL,
    )
