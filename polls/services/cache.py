"""Redis copies of what results reads need: the sticker's metadata and its latest tally.

Both are rebuilt from PostgreSQL on a miss; a write that changes them deletes them after commit.
"""

from typing import Any

from django.core.cache import cache

META_TTL = 300
TALLY_TTL = 120


def meta_key(sticker_id: int) -> str:
    return f"polls:meta:{sticker_id}"


def tally_key(sticker_id: int) -> str:
    return f"polls:tally:{sticker_id}"


def sticker_cache_forget(sticker_id: int) -> None:
    cache.delete_many([meta_key(sticker_id), tally_key(sticker_id)])


def cached_get_many(sticker_id: int) -> tuple[Any, Any]:
    found = cache.get_many([meta_key(sticker_id), tally_key(sticker_id)])
    return found.get(meta_key(sticker_id)), found.get(tally_key(sticker_id))


def meta_store(sticker_id: int, meta: dict[str, Any]) -> None:
    cache.set(meta_key(sticker_id), meta, META_TTL)


def tally_store(sticker_id: int, tally: dict[str, Any]) -> None:
    cache.set(tally_key(sticker_id), tally, TALLY_TTL)
