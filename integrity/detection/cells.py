"""Cells: where each like falls in (video, time window) at one scale, on two grids offset by
half a window, as columns (docs/integrity.md, "Detection"). Every scale's cells are runs in one
of the two orders of the likes that `Events` sorts once, so building them needs no sort."""

from dataclasses import dataclass

import numpy as np

from integrity.detection.arrays import Int
from integrity.detection.events import Events

SECOND = 1_000_000  # ts is in microseconds

# --- scales and cells ----------------------------------------------------------------------
# A cell is (video, time window): accounts that like the same videos within the same windows
# share cells. Two overlapping grids (offset by half a window) so two likes closer than half a
# window always share a cell. Groups are searched at several scales: minutes (a farm's batch),
# hours (jittered timing) and days (a slow drip) — the same search on coarser cells.


@dataclass(frozen=True)
class Scale:
    name: str
    seconds: int
    # a group's shared cells are those held by at least this share of its members: a batch
    # spread over hours or days splits its members over more cells, and takes part less fully
    shared_share: float


MINUTES = Scale("minutes", 15 * 60, 0.5)
HOURS = Scale("hours", 6 * 3600, 0.3)
DAYS = Scale("days", 4 * 86400, 0.3)
SCALES = (MINUTES, HOURS, DAYS)
CELL_SECONDS = MINUTES.seconds


@dataclass
class Cells:
    """Every like's cells at one scale, one row per distinct (account, cell), grouped by
    account; `likers`: how many accounts hold the row's cell; `starts`: where each account's
    rows start (events.users + 1 long)."""

    scale: Scale
    user: Int
    cell: Int
    like: Int
    likers: Int
    starts: Int
    span: int = 1  # a cell is video * span + its window on its grid: cell // span is its video

    @classmethod
    def of(cls, events: Events, scale: Scale) -> "Cells":
        return cls(scale, *_cells(events, scale.seconds))

    def rows_on_videos(self, videos: Int) -> Int:
        """The rows whose cells are on these videos (one pass, no search)."""
        if len(videos) == 0 or len(self.cell) == 0:
            return np.zeros(0, dtype=np.int64)
        table = np.zeros(int(videos.max()) + 2, dtype=bool)
        table[videos] = True
        video = np.minimum(self.cell // self.span, len(table) - 1)
        return np.flatnonzero(table[video])

    def rows_of(self, accounts: Int) -> Int:
        """The row indexes of these accounts' cells."""
        return self.rows_of_many(accounts)[0]

    def rows_of_many(self, accounts: Int) -> tuple[Int, Int]:
        """The row indexes of these accounts' cells, and for each row its position in
        `accounts` (vectorised: accounts may repeat)."""
        first = self.starts[accounts]
        lengths = self.starts[accounts + 1] - first
        total = int(lengths.sum())
        owner = np.repeat(np.arange(len(accounts)), lengths)
        offsets = np.cumsum(lengths) - lengths
        rows = np.arange(total, dtype=np.int64) - np.repeat(offsets - first, lengths)
        return rows, owner


def _cells(events: Events, seconds: int = CELL_SECONDS) -> tuple[Int, Int, Int, Int, Int, int]:
    """(account, cell, like index, likers, starts, span) of every like on both grids, one row per
    distinct (account, cell) pair (its first like), grouped by account (its cells on the first
    grid, then on the second); `likers`: how many accounts hold the row's cell; `starts`: where
    each account's rows start.

    No sort of its own: in the likes' (account, video, time) order each grid's cells are
    already sorted per account, so its distinct pairs are where the cell changes; in (video,
    time) order each cell is one run, so its accounts are the run's first likes of a pair.
    Each grid's rows are written straight to their place in the output (memory: the output
    and one grid's work arrays)."""
    window = seconds * SECOND
    n = len(events)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        no_rows = np.zeros(events.users + 1, dtype=np.int64)
        return (
            empty.astype(np.int32),
            empty,
            empty.astype(np.int32),
            empty.astype(np.int32),
            no_rows,
            1,
        )
    t0 = int(events.ts.min())
    buckets = int((events.ts.max() - t0 + window // 2) // window) + 2
    by_account = events.by_account
    user = events.user[by_account].astype(np.int32)
    video = events.video[by_account]
    # half windows since the first like: grid 0's window is half // 2, grid 1's (half + 1) // 2
    half = _half_windows(events.ts[by_account], t0, window)
    grids = []
    for grid in (0, 1):
        cell = _cell_of(video, half, grid, buckets)
        first = np.ones(n, dtype=bool)
        first[1:] = (cell[1:] != cell[:-1]) | (user[1:] != user[:-1])
        grids.append(first)
        del cell
    # each account's rows: its first-grid rows, then its second-grid rows
    per_grid = [np.bincount(user[first], minlength=events.users) for first in grids]
    starts = np.zeros(events.users + 1, dtype=np.int64)
    np.cumsum(per_grid[0] + per_grid[1], out=starts[1:])
    total = int(starts[-1])
    out_user = np.empty(total, dtype=np.int32)
    out_cell = np.empty(total, dtype=np.int64)
    out_like = np.empty(total, dtype=np.int32)
    out_likers = np.empty(total, dtype=np.int32)
    ahead = np.zeros(events.users, dtype=np.int64)  # rows of the grids before this one
    index_type = np.dtype(np.int32 if total < 2**31 else np.int64)
    for grid, first in enumerate(grids):
        # per like, how many accounts hold its cell on this grid: a cell is a run in video
        # order, its accounts the likes that are an account's first in it
        run_starts, run_of = cell_runs(events, window, grid * (window // 2))
        is_first = np.zeros(n, dtype=bool)
        is_first[by_account[first]] = True
        accounts = np.add.reduceat(is_first[events.by_video].astype(np.int32), run_starts)
        del is_first, run_starts
        likers_of_like = accounts[run_of]
        del run_of, accounts
        # rows are sorted by account: a row's place is its account's start, plus the rows of
        # the grids before, plus its rank among its account's rows on this grid
        grid_starts = np.zeros(events.users, dtype=np.int64)
        np.cumsum(per_grid[grid][:-1], out=grid_starts[1:])
        base = (starts[:-1] + ahead - grid_starts).astype(index_type)  # per account (small)
        row = 0
        for lo in range(0, n, CELLS_CHUNK):  # a chunk of likes at a time: bounded work arrays
            hi = min(n, lo + CELLS_CHUNK)
            chosen = first[lo:hi]
            row_user = user[lo:hi][chosen]
            place = base[row_user]
            place += np.arange(row, row + len(row_user), dtype=index_type)
            like = by_account[lo:hi][chosen]
            out_user[place] = row_user
            out_cell[place] = _cell_of(video[lo:hi][chosen], half[lo:hi][chosen], grid, buckets)
            out_like[place] = like
            out_likers[place] = likers_of_like[like]
            row += len(row_user)
        ahead += per_grid[grid]
        del likers_of_like
    return out_user, out_cell, out_like, out_likers, starts, 2 * buckets


CELLS_CHUNK = 1 << 21  # likes per step when the cells are written out


def _half_windows(ts: Int, t0: int, window: int) -> Int:
    """Half windows since t0, as int32 when they fit."""
    half = (ts - t0) // (window // 2)
    return half.astype(np.int32) if len(half) and int(half.max()) < 2**31 else half


def _cell_of(video: Int, half: Int, grid: int, buckets: int) -> Int:
    """The cells (video, window) on grid 0 (windows from t0) or grid 1 (shifted by half a
    window) of likes given as their videos and half windows since t0."""
    # in place, so that at most two int64 arrays of the likes' length are alive at once
    cell = half.astype(np.int64)
    cell += grid
    cell //= 2
    cell *= 2
    cell += grid
    offset = video.astype(np.int64)
    offset *= 2 * buckets
    cell += offset
    return cell


def cell_runs(events: Events, window: int, offset: int = 0) -> tuple[Int, Int]:
    """The (video, window) cells of a grid (windows of `window` microseconds from the first
    like, shifted by `offset`) as runs of `events.by_video`: each cell's start there, and per
    like the number of its cell (0..cells-1, in (video, time) order). Linear: no sort."""
    n = len(events)
    order = events.by_video
    bucket = events.ts[order]
    bucket -= int(events.ts.min()) - offset  # in place: one temporary array, not three
    bucket //= window
    video = events.video[order]
    change = np.empty(n, dtype=bool)
    change[:1] = True
    change[1:] = (bucket[1:] != bucket[:-1]) | (video[1:] != video[:-1])
    del bucket, video
    run_of = np.empty(n, dtype=np.int32)
    run_of[order] = np.cumsum(change, dtype=np.int32) - 1
    return np.flatnonzero(change), run_of
