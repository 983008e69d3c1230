"""Version tokens in the cache: a random token under a key, moved after every commit that
changes what a reader derives from the data behind it. A reader reads the token *before*
computing and stores its result with that token; the result is current while the token has not
moved (analytics documents and interest cells, the hot list's viewer likes).

A token is never absent when something is stored under it (`version_current` makes one), so an
evicted or expired token cannot match an old result. The cache ignores Redis errors (settings
CACHES): with Redis away nothing is read or stored, and readers compute every time."""

import uuid
from collections.abc import Iterable

from django.core.cache import cache


def versions_move(keys: Iterable[str], ttl: int) -> None:
    """Move the tokens of `keys` (call after the commit that changed their data)."""
    tokens = {key: uuid.uuid4().hex for key in keys}
    if tokens:
        cache.set_many(tokens, ttl)


def version_current(key: str, ttl: int) -> str | None:
    """The token of `key`, made now when there is none (None: Redis unreachable)."""
    cache.add(key, uuid.uuid4().hex, ttl)
    token = cache.get(key)
    return token if isinstance(token, str) else None
