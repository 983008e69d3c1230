"""The first day of an interest window, by quarter hour, kept in the cache (docs/analytics.md,
"Serving").

`interest_preferences` sums whole UTC days from the day tier (`CreatorHashtagDay`) and takes the
ragged first day `[start, next midnight)` from the rows: the creator's followers' plays and likes
on the day 7, 28 or 90 days ago, up to 24 hours of rows of everyone the creator's followers are,
probed follower by follower (~60-120 ms for a creator with 47,000 followers and 10,000,000
interactions). That day is over and its rows do not change but by a flip of `counted` or a
follow made or undone, and the window's start only moves through it. So the day is counted once,
per (creator, day, quarter hour, hashtag), and kept here; each read adds the cells from
`quarter_ceil(start)` on, and counts only the rows of `[start, quarter_ceil(start))` itself.

Exact, as every figure: a cell set is stored with the *generation* of its (creator, day) read
before it was counted, and used only while the generation has not moved. The analytics consumer
moves it after every pass that recounted the creator's interest cell of that day
(`interest_days_changed`), and the documents' epoch (a rebuild, a reconciliation that repaired
something) moves all of them, as for the documents. A generation is never absent when a set is
stored under it (one is made first), so an evicted generation cannot match an old set. A set
lives `CELLS_TTL_SECONDS`: if a pass's move was lost (Redis unreachable just then), the change
still shows within that, inside SPEC §3's five minutes for a flip. Redis unreachable (the cache
ignores its errors): the day is counted from the rows on every read; nothing fails.
"""

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from analytics.documents import EPOCH_KEY
from analytics.parameters import ALLOWED_DAYS
from core.versions import version_current, versions_move

# (quarter hour start in epoch seconds, hashtag id, plays, likes)
Cell = tuple[int, int, int, int]

_CELLS_KEY = "analytics:interest:cells:{creator}:{day}"
_GENERATION_KEY = "analytics:interest:gen:{creator}:{day}"
CELLS_TTL_SECONDS = 240
# Generations outlive every cell set stored under them by far.
GENERATION_TTL_SECONDS = 86_400
# Only a day at least this old can be a window's first day (the shortest window's), with a day
# to spare for the clocks of different machines.
_YOUNGEST_FIRST_DAY = timedelta(days=min(ALLOWED_DAYS) - 1)


def _keys(creator: int, day: datetime) -> tuple[str, str]:
    stamp = int(day.timestamp())
    return (
        _GENERATION_KEY.format(creator=creator, day=stamp),
        _CELLS_KEY.format(creator=creator, day=stamp),
    )


def interest_days_changed(cells: Iterable[tuple[int, datetime]]) -> None:
    """The (creator, UTC day) interest cells were recounted (call after the commit): the cell
    sets stored for them are no longer current. Days too young to be a window's first day are
    skipped (a busy creator's today changes on every pass)."""
    oldest = timezone.now() - _YOUNGEST_FIRST_DAY
    versions_move(
        (_keys(creator, day)[0] for creator, day in cells if day <= oldest),
        GENERATION_TTL_SECONDS,
    )


def _generation(creator: int, day: datetime) -> tuple[str | None, list[Cell] | None]:
    """The (epoch:generation) of the day now, and the cell set stored under it, if any."""
    generation_key, cells_key = _keys(creator, day)
    found = cache.get_many([EPOCH_KEY, generation_key, cells_key])
    generation = found.get(generation_key) or version_current(
        generation_key, GENERATION_TTL_SECONDS
    )
    if generation is None:
        return None, None
    current = f"{found.get(EPOCH_KEY) or ''}:{generation}"
    stored = found.get(cells_key)
    if isinstance(stored, dict) and stored.get("generation") == current:
        return current, stored["cells"]
    return current, None


def interest_day_cells(creator: int, day: datetime, count: Callable[[], list[Cell]]) -> list[Cell]:
    """The creator's interest cells of `day` (a UTC midnight): stored ones while current, else
    `count()` (from the rows), stored for the next read."""
    current, cells = _generation(creator, day)
    if cells is not None:
        return cells
    cells = count()
    if current is not None:
        cache.set(
            _keys(creator, day)[1], {"generation": current, "cells": cells}, CELLS_TTL_SECONDS
        )
    return cells
