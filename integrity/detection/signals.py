"""The detection signals over columnar like events (docs/integrity.md, "Detection").

Each signal reads `Events` (numpy arrays, sorted by time) and returns per-account figures or
candidate groups with their evidence; `integrity.detection.detect` combines them. Everything is
a sort, a segment reduction or a hash: linear (n log n) in the events, no pairwise comparison
of accounts.
"""

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
    order = np.lexsort((events.ts, events.user))
    user = events.user[order]
    ts = events.ts[order]
    starts, _ = runs(user)
    # one sorted key (account, then time in ms): ms keep it within int64 for billions of
    # accounts over any window a pass reads
    ms = (ts - (ts.min() if len(ts) else 0)) // 1000
    span = int(ms.max()) + 1 if len(ms) else 1
    key = user.astype(np.int64) * (span + max(VELOCITY_WINDOWS) * 1000) + ms
    index = np.arange(len(key), dtype=np.int64)
    out: dict[int, Int] = {}
    for window in VELOCITY_WINDOWS:
        first = np.searchsorted(key, key - window * 1000, side="right")
        counts = index - first + 1
        per_user = np.zeros(events.users, dtype=np.int64)
        if len(counts):
            per_user[user[starts]] = np.maximum.reduceat(counts, starts)
        out[window] = per_user
    return out


# --- lockstep groups -----------------------------------------------------------------------
# A cell is (video, time window): accounts that like the same videos within the same short
# windows share cells. Two overlapping grids (offset by half a window) so two likes closer than
# half a window always share a cell.
CELL_SECONDS = 15 * 60
MIN_ACCOUNT_CELLS = 3  # accounts with fewer co-liked cells are not grouped (too little to judge)
# Only co-liked cells go into the signatures: a cell that one or two accounts hold says nothing
# about groups (and an account's scattered likes would dilute its set: camouflage), and a cell
# that hundreds hold (a viral video's hour) is expected for anyone.
MIN_CELL_LIKERS = 3
MAX_CELL_LIKERS = 400
MINHASH_BANDS = 12
MINHASH_ROWS = 2  # two signatures agreeing on both rows of a band collide (Jaccard ~0.5+)
MIN_GROUP = 5
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
    # per member (aligned with `members`): the first and last of its likes in the shared cells
    first_us: Int = field(default_factory=lambda: np.zeros(0, np.int64))
    last_us: Int = field(default_factory=lambda: np.zeros(0, np.int64))


def _cells(events: Events) -> tuple[Int, Int, Int]:
    """(account, cell, like index) of every like on both grids, one row per distinct pair,
    sorted by account then cell."""
    window = CELL_SECONDS * SECOND
    n = len(events)
    base = events.ts - events.ts.min()
    buckets = int((base.max() + window // 2) // window) + 2 if n else 1
    video = events.video.astype(np.int64) * (2 * buckets)
    cell = np.empty(2 * n, dtype=np.int64)
    cell[:n] = video + 2 * (base // window)
    cell[n:] = video + 2 * ((base + window // 2) // window) + 1
    del video, base
    user = np.tile(events.user.astype(np.int32), 2)
    order = np.lexsort((cell, user))
    user = user[order]
    cell = cell[order]
    like = (order % n).astype(np.int32)
    del order
    keep = np.ones(len(user), dtype=bool)
    keep[1:] = (user[1:] != user[:-1]) | (cell[1:] != cell[:-1])
    return user[keep], cell[keep], like[keep]


def _cell_likers(cell: Int) -> Int:
    """Per row of `_cells`: how many accounts hold its cell (its rows are distinct (account,
    cell) pairs, so a cell's rows are its accounts)."""
    cells, counts = np.unique(cell, return_counts=True)
    return counts[np.searchsorted(cells, cell)].astype(np.int32)


def _signatures(user: Int, cell: Int, users: Int) -> np.ndarray:
    """MinHash signatures (accounts x bands*rows) of each account's cell set; rows of `user`
    are sorted by account and `users` are the accounts in order."""
    starts, _ = runs(user)
    k = MINHASH_BANDS * MINHASH_ROWS
    signature = np.empty((len(users), k), dtype=np.uint64)
    for i in range(k):
        signature[:, i] = np.minimum.reduceat(mix(cell, seed=0x5EED + i), starts)
    return signature


def _candidates(user: Int, cell: Int, likers: Int, n_users: int) -> Int:
    """Component label per account (n_users long; -1 for accounts in no candidate group): the
    accounts whose signatures (over their co-liked cells) collide in some band, joined
    transitively."""
    co_liked = (likers >= MIN_CELL_LIKERS) & (likers <= MAX_CELL_LIKERS)
    user, cell = user[co_liked], cell[co_liked]
    cells_per_user = np.bincount(user, minlength=n_users)
    eligible = cells_per_user >= MIN_ACCOUNT_CELLS
    keep = eligible[user]
    user, cell = user[keep], cell[keep]
    labels = np.full(n_users, -1, dtype=np.int64)
    if len(user) == 0:
        return labels
    accounts = np.unique(user)
    signature = _signatures(user, cell, accounts)
    left: list[Int] = []
    right: list[Int] = []
    for band in range(MINHASH_BANDS):
        rows = signature[:, band * MINHASH_ROWS : (band + 1) * MINHASH_ROWS]
        key = mix(rows[:, 0], seed=band)
        for r in range(1, MINHASH_ROWS):
            key = mix(key ^ rows[:, r], seed=band)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        # consecutive members of each bucket of size >= 2 are joined
        same = np.zeros(len(order), dtype=bool)
        same[1:] = sorted_key[1:] == sorted_key[:-1]
        idx = np.flatnonzero(same)
        left.append(order[idx - 1])
        right.append(order[idx])
    component = components(
        len(accounts), np.concatenate(left).astype(np.int64), np.concatenate(right).astype(np.int64)
    )
    sizes = np.bincount(component, minlength=len(accounts))
    in_group = sizes[component] >= MIN_GROUP
    labels[accounts[in_group]] = component[in_group]
    return labels


def lockstep(events: Events) -> list[Group]:
    """Candidate groups (MinHash LSH over the accounts' cell sets, linear in the likes), each
    judged by its shared cells against what its members' own activity and its cells'
    popularity predict (degree-corrected lift) and by how much of those cells it makes up."""
    user, cell, like = _cells(events)
    if len(user) == 0:
        return []
    cell_likers = _cell_likers(cell)  # per row: distinct accounts in its cell
    labels = _candidates(user, cell, cell_likers, events.users)
    cells_per_user = np.bincount(user, minlength=events.users).astype(np.float64)
    total_rows = float(len(user))
    groups: list[Group] = []
    member_rows = labels[user] >= 0
    if not member_rows.any():
        return []
    g_label = labels[user][member_rows]
    g_user, g_cell, g_like = user[member_rows], cell[member_rows], like[member_rows]
    g_likers = cell_likers[member_rows]
    order = np.argsort(g_label, kind="stable")
    starts, lengths = runs(g_label[order])
    for start, length in zip(starts, lengths, strict=True):
        rows = order[start : start + length]
        members = np.unique(g_user[rows])
        group = _judge(
            members,
            g_user[rows],
            g_cell[rows],
            g_like[rows],
            g_likers[rows],
            cells_per_user,
            total_rows,
            events,
        )
        if group is not None:
            groups.append(group)
    return groups


def _judge(
    members: Int,
    user: Int,
    cell: Int,
    like: Int,
    likers: Int,
    cells_per_user: np.ndarray,
    total_rows: float,
    events: Events,
) -> Group | None:
    _, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    needed = max(3, int(np.ceil(SHARED_SHARE * len(members))))
    shared = counts >= needed
    if shared.sum() < MIN_SHARED_CELLS:
        return None
    in_shared = shared[inverse]
    # members that hold few of the shared cells are not part of the group
    held = np.bincount(np.searchsorted(members, user[in_shared]), minlength=len(members))
    core = held >= max(2, int(0.5 * shared.sum()))
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
    if len(np.unique(events.video[like[in_shared]])) < MIN_SHARED_VIDEOS:
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
    outside_all = float(np.mean(1.0 - per_member_shared / np.maximum(totals, 1)))
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
    )


# --- devices and networks ---------------------------------------------------------------------
# A value shared by a few accounts that behave alike is evidence; one shared by many unrelated
# accounts (an office NAT, a carrier pool) is not: it is weighted by how many accounts share it.
def shared_values(events: Events, values: Int) -> Int:
    """Per like: how many distinct accounts share its device (or network) value (0 when the
    value is unknown, -1)."""
    known = values >= 0
    out = np.zeros(len(values), dtype=np.int64)
    if known.any():
        out[known] = distinct_count(values[known], events.user[known])
    return out


@dataclass
class Rows:
    """The likes of any set of accounts without a scan of all likes: the like indexes sorted by
    account, and where each account's run starts (one sort per pass, not one scan per group)."""

    by_user: Int
    starts: Int

    @classmethod
    def of(cls, events: Events) -> "Rows":
        by_user = np.argsort(events.user, kind="stable")
        starts = np.searchsorted(events.user[by_user], np.arange(events.users + 1))
        return cls(by_user=by_user, starts=starts)

    def of_accounts(self, accounts: Int) -> Int:
        return np.concatenate(
            [self.by_user[self.starts[a] : self.starts[a + 1]] for a in accounts.tolist()]
            or [np.zeros(0, dtype=np.int64)]
        )


def group_concentration(
    events: Events, group: Group, values: Int, sharers_of: Int, rows_of: Rows, crowd: int
) -> float:
    """The share of the group's members whose likes in the data come mostly through values
    (devices or networks) that other members share and that at most `crowd` accounts use in
    all: 1.0 for a farm behind a few devices, ~0 for accounts on their own devices or behind a
    carrier's pool. `sharers_of`: per like, the accounts behind its value (`shared_values`,
    once per pass)."""
    members = group.members
    rows = rows_of.of_accounts(members)
    rows = rows[values[rows] >= 0]
    if len(rows) == 0:
        return 0.0
    value = values[rows]
    user = events.user[rows]
    sharers = sharers_of[rows]  # accounts behind the value, members or not
    pairs = np.unique(np.stack((value, user), axis=1), axis=0)
    distinct_values = np.unique(pairs[:, 0])
    member_sharers = np.bincount(
        np.searchsorted(distinct_values, pairs[:, 0]), minlength=len(distinct_values)
    )  # every row here is a member's
    member_count = member_sharers[np.searchsorted(distinct_values, value)]
    suspicious = (member_count >= 2) & (sharers <= crowd)
    per_user_total = np.bincount(np.searchsorted(members, user), minlength=len(members))
    per_user_suspicious = np.bincount(
        np.searchsorted(members, user[suspicious]), minlength=len(members)
    )
    share = per_user_suspicious / np.maximum(per_user_total, 1)
    return float(np.mean(share >= 0.5))
