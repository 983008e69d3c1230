"""The detection signals over columnar like events (docs/integrity.md, "Detection").

Each signal reads `Events` (numpy arrays, sorted by time) and returns per-account figures or
candidate groups with their evidence; `integrity.detection.detect` combines them. Everything is
a sort, a segment reduction or a hash: linear (n log n) in the events, no pairwise comparison
of accounts.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from integrity.detection.arrays import Int, components, distinct_count, mix, runs
from integrity.detection.events import Events

SECOND = 1_000_000  # ts is in microseconds

# --- velocity ------------------------------------------------------------------------------
# People like fast while they scroll, but not this fast for long: the most likes one account
# made within each window (windows in seconds).
VELOCITY_WINDOWS = (60, 3600)


def velocity(events: Events) -> dict[int, Int]:
    """Per account and window: the most likes it made within any such window."""
    out = {window: np.zeros(events.users, dtype=np.int64) for window in VELOCITY_WINDOWS}
    n = len(events)
    if n == 0:
        return out
    order = np.argsort(events.user, kind="stable")  # the likes are in time order
    user = events.user[order]
    # one sorted key (account, then time in ms), built in place: ms keep it within int64 for
    # billions of accounts over any window a pass reads
    key = events.ts[order]
    del order
    key -= int(events.ts.min())
    key //= 1000
    stride = int(key.max()) + 1 + max(VELOCITY_WINDOWS) * 1000
    account_part = user.astype(np.int64)
    account_part *= stride
    key += account_part
    del account_part
    starts, _ = runs(user)
    for window in VELOCITY_WINDOWS:
        # likes within the window up to each like: its index less the first one's, plus one
        count = np.searchsorted(key, key - window * 1000, side="right")
        count *= -1
        count += np.arange(1, n + 1, dtype=np.int64)
        out[window][user[starts]] = np.maximum.reduceat(count, starts)
        del count
    return out


# --- lockstep groups -----------------------------------------------------------------------
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
MIN_ACCOUNT_CELLS = 3  # accounts with fewer co-liked cells are not grouped (too little to judge)
# Only co-liked cells go into the signatures: a cell that one or two accounts hold says nothing
# about groups (and an account's scattered likes would dilute its set: camouflage), and a cell
# that hundreds hold (a viral video's hour) is expected for anyone.
MIN_CELL_LIKERS = 3
MAX_CELL_LIKERS = 400
MINHASH_BANDS = 12
MINHASH_ROWS = 2  # two signatures agreeing on both rows of a band collide (Jaccard ~0.5+)
# A component of more accounts than any farm judged at once is split with more rows per band
# (stricter), in turn; one still bigger after the last is no candidate.
MAX_COMPONENT = 1000
SPLIT_ROWS = (3, 4, 6)
MIN_GROUP = 5
REJUDGE_SMALLEST = 2 * MIN_GROUP  # a failed component this big may hide a group: split it too
# A group's shared cells: held by at least this share of its members (and 3 of them).
SHARED_SHARE = 0.5
MIN_SHARED_CELLS = 3
# ... on at least this many distinct videos: two strangers in a viral video's quarter hour
# share a cell by chance, not three videos' windows.
MIN_SHARED_VIDEOS = 3


@dataclass
class Group:
    """A candidate lockstep group and its evidence."""

    members: Int  # account codes
    shared_cells: int  # cells held by >= SHARED_SHARE of the members
    participation: float  # mean share of the shared cells each member holds
    lift: float  # members' likes in the shared cells / what their activity predicts
    contrast: float  # share of the shared cells' likers that are members
    spread_s: float  # median time spread of the members' likes within a shared cell
    outside_share: float  # mean share of a member's cells outside the shared ones
    videos: Int = field(default_factory=lambda: np.zeros(0, np.int64))
    scale: str = MINUTES.name
    source: str = "co_likes"  # how the candidates were found: co_likes, device, network
    cells: Int = field(default_factory=lambda: np.zeros(0, np.int64))  # its shared cells
    # per member: the share of its cells outside the shared ones (its own history)
    member_outside: np.ndarray = field(default_factory=lambda: np.zeros(0))
    work: Int = field(default_factory=lambda: np.zeros(0, np.int64))  # its likes in those cells
    # per member: the share of its shared cells where the members are half the likers or more
    member_dominated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # per member (aligned with `members`): the first and last of its likes in the shared cells
    first_us: Int = field(default_factory=lambda: np.zeros(0, np.int64))
    last_us: Int = field(default_factory=lambda: np.zeros(0, np.int64))


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
        user, cell, like, likers, span = _cells(events, scale.seconds)
        starts = np.zeros(events.users + 1, dtype=np.int64)
        np.cumsum(np.bincount(user, minlength=events.users), out=starts[1:])
        return cls(scale, user, cell, like, likers, starts, span)

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


def _cells(events: Events, seconds: int = CELL_SECONDS) -> tuple[Int, Int, Int, Int, int]:
    """(account, cell, like index, likers, span) of every like on both grids, one row per distinct
    (account, cell) pair (its first like), grouped by account (its cells on the first grid,
    then on the second); `likers`: how many accounts hold the row's cell.

    No sort of its own: in the likes' (account, video, time) order each grid's cells are
    already sorted per account, so its distinct pairs are where the cell changes; in (video,
    time) order each cell is one run, so its accounts are the run's first likes of a pair.
    Each grid's rows are written straight to their place in the output (memory: the output
    and one grid's work arrays)."""
    window = seconds * SECOND
    n = len(events)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty.astype(np.int32), empty, empty.astype(np.int32), empty.astype(np.int32), 1
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
    return out_user, out_cell, out_like, out_likers, 2 * buckets


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


def _band_components(user: Int, cell: Int, accounts: Int, rows: int, parent: Int) -> Int:
    """Components of the accounts (`accounts`, the distinct sorted `user`s) whose MinHash
    signatures over their cells agree on all `rows` rows of some band (MINHASH_BANDS bands,
    hash seeds per `rows`), only within the same `parent` component; labels 0..len-1."""
    starts, _ = runs(user)
    # one well-mixed hash per row, then a cheap odd multiply-add per hash function (its high
    # bits, which decide the minimum, are well mixed): two passes per function instead of ten
    base = mix(cell, seed=0x5EED + rows)
    hashed = np.empty_like(base)
    multipliers = mix(np.arange(MINHASH_BANDS * rows), seed=rows) | np.uint64(1)
    key_of = np.zeros((MINHASH_BANDS, len(accounts)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(MINHASH_BANDS):
            key = mix(parent, seed=band)
            for r in range(rows):
                function = band * rows + r
                np.multiply(base, multipliers[function], out=hashed)
                hashed += multipliers[function] >> np.uint64(7)
                key = mix(key ^ np.minimum.reduceat(hashed, starts), seed=band)
            key_of[band] = key
    del base, hashed
    left: list[Int] = []
    right: list[Int] = []
    for key in key_of:
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        # consecutive members of each bucket of size >= 2 are joined
        idx = np.flatnonzero(sorted_key[1:] == sorted_key[:-1]) + 1
        left.append(order[idx - 1])
        right.append(order[idx])
    return components(
        len(accounts), np.concatenate(left).astype(np.int64), np.concatenate(right).astype(np.int64)
    )


@dataclass
class _CoLiked:
    """The rows of `Cells` that go into the signatures: co-liked cells of accounts with at
    least MIN_ACCOUNT_CELLS of them, sorted by account (`accounts`, each with `per_account`
    rows)."""

    user: Int
    cell: Int
    accounts: Int
    per_account: Int

    @classmethod
    def of(cls, cells: Cells, n_users: int) -> "_CoLiked":
        likers = cells.likers
        co_liked = (likers >= MIN_CELL_LIKERS) & (likers <= MAX_CELL_LIKERS)
        # per account (its rows are contiguous), how many of its cells are co-liked
        running = np.zeros(len(co_liked) + 1, dtype=np.int32)
        np.cumsum(co_liked, out=running[1:])
        eligible = np.diff(running[cells.starts]) >= MIN_ACCOUNT_CELLS
        del running
        co_liked &= eligible[cells.user]
        user, cell = cells.user[co_liked], cells.cell[co_liked]
        accounts, per_account = np.unique(user, return_counts=True)
        return cls(user, cell, accounts, per_account)

    def split(self, component: Int, which: np.ndarray, rows: int) -> Int:
        """`component` with the accounts `which` (a mask over `accounts`) relabelled by a
        stricter hash (`rows` per band) within their components, apart from every other label."""
        row_of = np.repeat(which, self.per_account)
        split = _band_components(
            self.user[row_of], self.cell[row_of], self.accounts[which], rows, component[which]
        )
        out = component.copy()
        out[which] = int(component.max()) + 1 + split
        return out


def lockstep(events: Events, cells: Cells | None = None) -> list[Group]:
    """Candidate groups (MinHash LSH over the accounts' cell sets, linear in the likes), each
    judged by its shared cells against what its members' own activity and its cells'
    popularity predict (degree-corrected lift) and by how much of those cells it makes up.

    The accounts whose signatures collide in some band are joined transitively. A component
    too big to be one farm, or big and failing its judgement (organic look-alikes chain: fans
    of the same creators, chats that overlap, everyone in a small world), is split by a
    stricter hash of its own accounts (more rows per band, SPLIT_ROWS in turn) and its parts
    judged; what is still too big after the last is no candidate."""
    if cells is None:
        cells = Cells.of(events, MINUTES)
    if len(cells.user) == 0:
        return []
    co = _CoLiked.of(cells, events.users)
    if len(co.accounts) == 0:
        return []
    cells_per_user = np.diff(cells.starts).astype(np.float64)
    total_rows = float(len(cells.user))
    component = _band_components(
        co.user, co.cell, co.accounts, MINHASH_ROWS, np.zeros(len(co.accounts), dtype=np.int64)
    )
    groups: list[Group] = []
    pending = np.ones(len(co.accounts), dtype=bool)  # accounts whose components await a verdict
    for stricter in (*SPLIT_ROWS, None):
        sizes = np.bincount(component)
        size = sizes[component]
        again = pending & (size > MAX_COMPONENT)
        judged = pending & (size >= MIN_GROUP) & ~again
        order = np.argsort(component[judged], kind="stable")
        members_of = co.accounts[judged][order]
        label_of = component[judged][order]
        starts, lengths = runs(label_of)
        failed_labels: list[int] = []
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            members = members_of[start : start + length]
            rows = cells.rows_of(members)
            group = _judge(
                members,
                cells.user[rows],
                cells.cell[rows],
                cells.like[rows],
                cells.likers[rows],
                cells_per_user,
                total_rows,
                events,
                cells.scale,
            )
            if group is not None:
                groups.append(group)
            elif length >= REJUDGE_SMALLEST:
                failed_labels.append(int(label_of[start]))
        if failed_labels:
            again |= pending & np.isin(component, failed_labels)
        if stricter is None or not again.any():
            break
        component = co.split(component, again, stricter)
        pending = again
    return groups


def judge_accounts(events: Events, accounts: Int, cells: Cells, source: str) -> Group | None:
    """A candidate group found another way (accounts behind one device or network) judged like
    a lockstep candidate on `cells`: the same shared cells, lift and contrast."""
    rows = cells.rows_of(accounts)
    if len(rows) == 0:
        return None
    cells_per_user = np.diff(cells.starts).astype(np.float64)
    group = _judge(
        np.unique(accounts),
        cells.user[rows],
        cells.cell[rows],
        cells.like[rows],
        cells.likers[rows],
        cells_per_user,
        float(len(cells.user)),
        events,
        cells.scale,
        min_videos=1,
    )
    if group is not None:
        group.source = source
    return group


WORTH_JUDGING_CHUNK = 40_000  # accounts per vectorised pass (bounds its memory)


def worth_judging(groups: list[Int], cells: Cells) -> list[int]:
    """The indexes of the candidate groups that have at least one cell held by the share of
    their members a shared cell needs: one vectorised pass per chunk of groups instead of a
    judgement per group (most of the accounts behind an address never like together)."""
    if not groups or len(cells.cell) == 0:
        return []
    cell_bits = max(1, int(cells.cell.max()).bit_length())
    worth: list[int] = []
    first = 0
    while first < len(groups):
        last, accounts_in = first, 0
        while last < len(groups) and (accounts_in < WORTH_JUDGING_CHUNK or last == first):
            accounts_in += len(groups[last])
            last += 1
        chunk = groups[first:last]
        accounts = np.concatenate(chunk)
        sizes = np.array([len(g) for g in chunk])
        group_of = np.repeat(np.arange(len(chunk)), sizes)
        rows, owner = cells.rows_of_many(accounts)
        # a shared cell has at least 3 holders
        held_enough = cells.likers[rows] >= 3
        rows, owner = rows[held_enough], owner[held_enough]
        if len(rows):
            group_bits = max(1, len(chunk).bit_length())
            if cell_bits + group_bits <= 63:
                key = (group_of[owner].astype(np.int64) << cell_bits) | cells.cell[rows]
                pairs, held = np.unique(key, return_counts=True)
                group = pairs >> cell_bits
            else:
                _, cell_code = np.unique(cells.cell[rows], return_inverse=True)
                key = group_of[owner].astype(np.int64) * (int(cell_code.max()) + 1) + cell_code
                pairs, held = np.unique(key, return_counts=True)
                group = pairs // (int(cell_code.max()) + 1)
            needed = np.maximum(3, np.ceil(cells.scale.shared_share * sizes)).astype(np.int64)
            worth.extend((first + np.unique(group[held >= needed[group]])).tolist())
        first = last
    return worth


def value_groups(events: Events, values: Int, *, smallest: int, crowd: int) -> list[Int]:
    """The accounts behind each device (or network) value that between `smallest` and `crowd`
    accounts use: a farm's phones and addresses, never a carrier's pool or a big office."""
    known = values >= 0
    if not known.any():
        return []
    user = events.user[known].astype(np.int64)
    span = int(user.max()) + 1
    pairs = np.unique(values[known].astype(np.int64) * span + user)
    value, account = pairs // span, pairs % span
    starts, lengths = runs(value)
    chosen = (lengths >= smallest) & (lengths <= crowd)
    return [account[s : s + n] for s, n in zip(starts[chosen], lengths[chosen], strict=True)]


def _judge(
    members: Int,
    user: Int,
    cell: Int,
    like: Int,
    likers: Int,
    cells_per_user: np.ndarray,
    total_rows: float,
    events: Events,
    scale: Scale = MINUTES,
    min_videos: int = MIN_SHARED_VIDEOS,
) -> Group | None:
    _, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    needed = max(3, int(np.ceil(scale.shared_share * len(members))))
    shared = counts >= needed
    if shared.sum() < (MIN_SHARED_CELLS if min_videos >= MIN_SHARED_VIDEOS else 1):
        return None
    in_shared = shared[inverse]
    # members that hold few of the shared cells are not part of the group
    held = np.bincount(np.searchsorted(members, user[in_shared]), minlength=len(members))
    core = held >= max(min(2, int(shared.sum())), int(scale.shared_share * shared.sum()))
    if core.sum() < MIN_GROUP:
        return None
    members = members[core]
    keep = np.isin(user, members)
    user, cell, like, likers, in_shared = (
        user[keep],
        cell[keep],
        like[keep],
        likers[keep],
        in_shared[keep],
    )
    n_shared = len(np.unique(cell[in_shared]))
    if len(np.unique(events.video[like[in_shared]])) < min_videos:
        return None
    # degree-corrected expectation: a cell with n likers draws each of them in proportion to
    # their activity, so the members are expected there n * (members' cells / all cells) times
    member_weight = float(cells_per_user[members].sum()) / total_rows
    _, first = np.unique(cell[in_shared], return_index=True)
    cell_size = likers[in_shared][first].astype(np.float64)
    observed = float(in_shared.sum())
    expected = float((cell_size * member_weight).sum())
    lift = observed / expected if expected > 0 else float("inf")
    contrast = observed / float(cell_size.sum()) if cell_size.sum() else 0.0
    # timing: spread of the members' likes within each shared cell
    ts = events.ts[like[in_shared]]
    order = np.lexsort((ts, cell[in_shared]))
    starts, _ = runs(cell[in_shared][order])
    spans = np.maximum.reduceat(ts[order], starts) - np.minimum.reduceat(ts[order], starts)
    spread = float(np.median(spans)) / SECOND if len(spans) else 0.0
    per_member = np.bincount(np.searchsorted(members, user), minlength=len(members))
    per_member_shared = np.bincount(
        np.searchsorted(members, user[in_shared]), minlength=len(members)
    )
    outside = 1.0 - float(np.mean(per_member_shared / np.maximum(per_member, 1)))
    shared_ts = events.ts[like[in_shared]]
    member_of = np.searchsorted(members, user[in_shared])
    first_us = np.full(len(members), np.iinfo(np.int64).max, dtype=np.int64)
    last_us = np.full(len(members), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first_us, member_of, shared_ts)
    np.maximum.at(last_us, member_of, shared_ts)
    totals = cells_per_user[members]
    member_outside = np.maximum(
        1.0 - per_member_shared / np.maximum(per_member, 1),
        1.0 - per_member_shared / np.maximum(totals, 1),
    )
    outside_all = float(np.mean(1.0 - per_member_shared / np.maximum(totals, 1)))
    # per member: the share of its shared cells that the group dominates (half their likers
    # or more: a farm's targets); a heavy user who shares the group's cover likes on popular
    # videos holds only cells where the group is a minority
    _, shared_code, group_count = np.unique(
        cell[in_shared], return_inverse=True, return_counts=True
    )
    dominated = (group_count >= 0.5 * cell_size)[shared_code]
    member_dominated = np.bincount(member_of[dominated], minlength=len(members)) / np.maximum(
        per_member_shared, 1
    )
    return Group(
        members=members,
        shared_cells=n_shared,
        participation=float(np.mean(per_member_shared / max(n_shared, 1))),
        lift=lift,
        contrast=contrast,
        spread_s=spread,
        outside_share=max(outside, outside_all),
        videos=np.unique(events.video[like[in_shared]]).astype(np.int64),
        first_us=first_us,
        last_us=last_us,
        scale=scale.name,
        cells=np.unique(cell[in_shared]),
        member_outside=member_outside,
        member_dominated=member_dominated,
        work=np.unique(like[in_shared]).astype(np.int64),
    )


COMPLETE_MIN_CELLS = 6


def groups_completed(
    events: Events, groups: list[Group], cells: Cells, strong: Callable[[Group], bool]
) -> list[Group]:
    """Each group with every account that holds the scale's share of its shared cells (the members
    a candidate search split off or missed: a farm seen through one address at a time), groups
    that share cells merged into one, and the result judged again (one pass over the cells).
    A merged or completed group that is no longer `strong` (a farm merged with a chat that
    liked one of its videos) gives way to its parts as they were."""
    if not groups:
        return []
    group_of_cell = np.concatenate([np.full(len(g.cells), i) for i, g in enumerate(groups)])
    all_cells = np.concatenate([g.cells for g in groups])
    # groups that share a cell are one
    order = np.argsort(all_cells, kind="stable")
    same = np.flatnonzero(all_cells[order][1:] == all_cells[order][:-1])
    merged = components(len(groups), group_of_cell[order][same], group_of_cell[order][same + 1])
    # joining needs that share of six cells or more: a genuine account holds that much of a
    # group's cells only by chance when they are few; and never on the days scale, where a cell is
    # nearly a video and its fans hold many
    never = np.iinfo(np.int64).max
    need = np.array(
        [
            max(3, int(np.ceil(cells.scale.shared_share * len(g.cells))))
            if len(g.cells) >= COMPLETE_MIN_CELLS and cells.scale.seconds < DAYS.seconds
            else never
            for g in groups
        ]
    )
    # every (account, group) holding of a cell of a group that may be joined: the rows on
    # those groups' videos, matched to their cells
    joinable = need[group_of_cell] < never
    account = group_index = np.zeros(0, dtype=np.int64)
    held = np.zeros(0, dtype=np.int64)
    if joinable.any():
        distinct, first = np.unique(all_cells[joinable], return_index=True)
        holder_of = group_of_cell[joinable][first]  # a cell of several groups: the first's
        rows = cells.rows_on_videos(np.unique(distinct // cells.span))
        position = np.minimum(np.searchsorted(distinct, cells.cell[rows]), len(distinct) - 1)
        hit = distinct[position] == cells.cell[rows]
        rows, position = rows[hit], position[hit]
        key = cells.user[rows].astype(np.int64) * len(groups) + holder_of[position]
        pairs, held = np.unique(key, return_counts=True)
        account, group_index = pairs // len(groups), pairs % len(groups)
    joined = held >= need[group_index]
    # per merged component: its groups and the accounts that join it
    joiner_component = merged[group_index[joined]]
    by_component = np.argsort(joiner_component, kind="stable")
    joiners, joiner_component = account[joined][by_component], joiner_component[by_component]
    group_order = np.argsort(merged, kind="stable")
    component_starts, component_sizes = runs(merged[group_order])
    completed: list[Group] = []
    for start, size in zip(component_starts.tolist(), component_sizes.tolist(), strict=True):
        parts = group_order[start : start + size]
        component = int(merged[parts[0]])
        lo, hi = np.searchsorted(joiner_component, [component, component + 1])
        accounts = np.unique(
            np.concatenate([groups[i].members for i in parts.tolist()] + [joiners[lo:hi]])
        )
        best = max((groups[i] for i in parts.tolist()), key=lambda g: len(g.members))
        if len(parts) == 1 and len(accounts) == len(best.members):
            completed.append(best)
            continue
        again = judge_accounts(events, accounts, cells, best.source)
        if again is not None and strong(again) and len(again.members) >= len(best.members):
            completed.append(again)
            # a part the merged group left out (a small farm on one of a big group's videos
            # holds few of the merged cells) stands as it was
            completed.extend(
                groups[i]
                for i in parts.tolist()
                if np.isin(groups[i].members, again.members).mean() < 0.5
            )
        else:
            completed.extend(groups[i] for i in parts.tolist())
    return completed


# --- devices and networks ---------------------------------------------------------------------
# A value shared by a few accounts that behave alike is evidence; one shared by many unrelated
# accounts (an office NAT, a carrier pool) is not: it is weighted by how many accounts share it.
def shared_values(events: Events, values: Int) -> Int:
    """Per like: how many distinct accounts share its device (or network) value (0 when the
    value is unknown, -1)."""
    known = values >= 0
    out = np.zeros(len(values), dtype=np.int32)
    if known.any():
        out[known] = distinct_count(values[known], events.user[known])
    return out


def member_concentration(
    events: Events, group: Group, values: Int, sharers_of: Int, crowd: int
) -> np.ndarray:
    """Per member, the share of its likes in the group's cells (`group.work`) that come through
    values (devices or networks) that another member shares and that at most `crowd` accounts
    use in all, or that are mostly the group's: 1.0 for a farm behind a few devices, ~0 for
    accounts on their own devices or behind a carrier's pool (a hijacked account's own history,
    on its owner's phone and home network, is not in the group's cells). `sharers_of`: per
    like, the accounts behind its value (`shared_values`, once per pass)."""
    members = group.members
    rows = group.work[values[group.work] >= 0]
    if len(rows) == 0:
        return np.zeros(len(members))
    value = values[rows]
    user = events.user[rows]
    sharers = sharers_of[rows]  # accounts behind the value, members or not
    member_count = distinct_count(value, user)  # every row here is a member's
    # the group's own value: few others use it, or its users are mostly the group
    suspicious = (member_count >= 2) & ((sharers <= crowd) | (2 * member_count >= sharers))
    per_user_total = np.bincount(np.searchsorted(members, user), minlength=len(members))
    per_user_suspicious = np.bincount(
        np.searchsorted(members, user[suspicious]), minlength=len(members)
    )
    share: np.ndarray = per_user_suspicious / np.maximum(per_user_total, 1)
    return share


# --- accounts pinned to one device and one address of their own ------------------------------
# A person moves: phone and tablet, home, office and the carrier's network. An account that
# made many likes, every one from the same device and the same address, neither of which any
# other account uses, is pinned to an emulator profile and a dedicated proxy.
PINNED_MIN_LIKES = 20


def pinned_accounts(events: Events, device_sharers: Int, address_sharers: Int) -> np.ndarray:
    """Per account: at least PINNED_MIN_LIKES likes, all from one known device and one known
    address, each used by no other account (`*_sharers`: per like, accounts behind its value,
    from `shared_values`)."""
    n = len(events)
    pinned = np.zeros(events.users, dtype=bool)
    if n == 0:
        return pinned
    likes = np.bincount(events.user, minlength=events.users)
    first = np.full(events.users, n, dtype=np.int64)
    first[events.user] = np.arange(n)  # one like of each account (any: all must agree)
    candidates = np.flatnonzero(likes >= PINNED_MIN_LIKES)
    like = first[candidates]
    alone = (device_sharers[like] == 1) & (address_sharers[like] == 1)
    candidates, like = candidates[alone], like[alone]
    if len(candidates) == 0:
        return pinned
    # every like of theirs on that device and that address
    mine = np.zeros(events.users, dtype=bool)
    mine[candidates] = True
    rows = np.flatnonzero(mine[events.user])
    device_of = np.full(events.users, -1, dtype=np.int64)
    address_of = np.full(events.users, -1, dtype=np.int64)
    device_of[candidates] = events.device[like]
    address_of[candidates] = events.ip[like]
    user = events.user[rows]
    off = (events.device[rows] != device_of[user]) | (events.ip[rows] != address_of[user])
    strays = np.bincount(user[off], minlength=events.users)
    pinned[candidates] = strays[candidates] == 0
    return pinned


# --- bursts from accounts with almost no history on spoofed devices ------------------------------
# A one-shot order: many accounts that have barely liked anything like one video within half an
# hour, each from a device (and an address) that is never seen again. Genuine newcomers do
# arrive on a video together, but as a sliver of its likers and on devices they keep using.
BURST_SECONDS = 30 * 60
BURST_MIN_LIKES = 8
BURST_SHARE = 0.5  # of the cell's likes
FEW_LIKES = 8  # "almost no history": at most this many likes in the data


def bursts(events: Events) -> list[Group]:
    """One group per burst cell (video, half hour, two grids): its likes from accounts with
    almost no history on single-use devices, when they are at least BURST_MIN_LIKES and half
    of the cell's likes."""
    n = len(events)
    if n == 0:
        return []
    likes_of = np.bincount(events.user, minlength=events.users)
    suspect = single_use(events.device) & (likes_of[events.user] <= FEW_LIKES)
    if not suspect.any():
        return []
    window = BURST_SECONDS * SECOND
    share = float(np.mean(suspect))  # what any cell's likes are expected to hold
    # per suspect like, the burst cell it falls in on each grid (-1: none); burst cells of the
    # two grids that share likes are one burst (an order across a grid line)
    node = np.full((2, n), -1, dtype=np.int32)
    nodes = 0
    counts_of: list[Int] = []
    for grid, offset in enumerate((0, window // 2)):
        starts, inverse = cell_runs(events, window, offset)
        counts = np.diff(np.r_[starts, n])
        suspects = np.bincount(inverse[suspect], minlength=len(starts))
        burst = (suspects >= BURST_MIN_LIKES) & (suspects >= BURST_SHARE * counts)
        code = np.full(len(starts), -1, dtype=np.int32)
        code[burst] = nodes + np.arange(int(burst.sum()))
        nodes += int(burst.sum())
        counts_of.append(counts[burst])
        node[grid] = np.where(suspect, code[inverse], -1)
    if nodes == 0:
        return []
    cell_likes = np.concatenate(counts_of)
    both = (node[0] >= 0) & (node[1] >= 0)
    label = components(nodes, node[0][both], node[1][both])
    in_burst = np.flatnonzero((node[0] >= 0) | (node[1] >= 0))
    like_label = label[np.where(node[0][in_burst] >= 0, node[0][in_burst], node[1][in_burst])]
    order = np.argsort(like_label, kind="stable")
    rows = in_burst[order]
    starts, lengths = runs(like_label[order])
    groups: list[Group] = []
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        likes = rows[start : start + length]
        first_node = int(node[0][likes[0]] if node[0][likes[0]] >= 0 else node[1][likes[0]])
        groups.append(_burst_group(events, likes, int(cell_likes[first_node]), likes_of, share))
    return groups


def _burst_group(events: Events, likes: Int, cell_likes: int, likes_of: Int, share: float) -> Group:
    user = events.user[likes]
    members, first = np.unique(user, return_index=True)
    ts = events.ts[likes][first]
    spread = float(events.ts[likes].max() - events.ts[likes].min()) / SECOND
    return Group(
        members=members,
        shared_cells=1,
        participation=1.0,
        # the cell's share of such likes over the share all likes hold (finite: it is stored)
        lift=(len(likes) / max(cell_likes, 1)) / max(share, 1e-9),
        contrast=len(likes) / max(cell_likes, 1),
        spread_s=spread,
        outside_share=float(np.mean(1.0 - 1.0 / np.maximum(likes_of[members], 1))),
        videos=np.unique(events.video[likes]).astype(np.int64),
        first_us=ts.astype(np.int64),
        last_us=ts.astype(np.int64),
        scale="burst",
        source="burst",
        work=np.sort(likes).astype(np.int64),
        member_outside=1.0 - 1.0 / np.maximum(likes_of[members], 1),
    )


def single_use(values: Int) -> np.ndarray:
    """Per like: whether its value (device or address) is known and no other like has it."""
    known = values >= 0
    uses = np.bincount(values[known], minlength=1)
    return known & (uses[np.maximum(values, 0)] == 1)
