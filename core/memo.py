"""Values a process computes once for a key that names their content exactly.

For what is derived from data held elsewhere (Redis, PostgreSQL) and named by its content: a
results body by its ETag, a hot list body by the list's bytes in Redis and the viewer's likes.
Any process computes the same value for the same key, so keeping it is not state: nothing is
ever served that another process would not serve. At most `size` values; when full it starts
over (the keys in use are few and short-lived: a hot sticker's current tally, the current hot
list).
"""

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ContentMemo(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self.values: dict[K, V] = {}
        self.lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for `key`, or `make()`'s, kept."""
        value = self.values.get(key)
        if value is None:
            value = make()
            with self.lock:
                if len(self.values) >= self.size:
                    self.values.clear()
                self.values[key] = value
        return value
