"""Lockstep groups (the CopyCatch family) over one scale's cells: candidates by MinHash LSH
over the accounts' co-liked cells or behind one device or address, each judged against what
its members' own activity and its cells' popularity predict (docs/integrity.md, "Detection").
Linear in the likes: sorts, segment reductions and hashes, no pairwise comparison of accounts."""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from integrity.detection.arrays import Int, components, mix, runs
from integrity.detection.cells import DAYS, MINUTES, SECOND, Cells, Scale
from integrity.detection.events import Events

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
# A group's shared cells: held by its scale's share of its members (and 3 of them), at least
# this many of them.
MIN_SHARED_CELLS = 3
# ... on at least this many distinct videos: two strangers in a viral video's quarter hour
# share a cell by chance, not three videos' windows.
MIN_SHARED_VIDEOS = 3


@dataclass
class Group:
    """A candidate lockstep group and its evidence."""

    members: Int  # account codes
    shared_cells: int  # cells held by >= the scale's shared_share of the members
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
        starts, per_account = runs(user)  # rows are grouped by account
        return cls(user, cell, user[starts], per_account)

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
        position_of = np.flatnonzero(judged)[order]  # positions in co.accounts
        label_of = component[position_of]
        starts, lengths = runs(label_of)
        failed: list[Int] = []
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            positions = position_of[start : start + length]
            # a component may hold more than one group (two farms chained by a shared
            # target, a farm beside a chat): the accounts a group leaves are judged again
            while len(positions) >= MIN_GROUP:
                members = co.accounts[positions]
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
                if group is None:
                    if len(positions) >= REJUDGE_SMALLEST:
                        failed.append(positions)
                    break
                groups.append(group)
                positions = positions[~np.isin(members, group.members)]
        if failed:
            again[np.concatenate(failed)] = True
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
    distinct, inverse, counts = np.unique(cell, return_inverse=True, return_counts=True)
    needed = max(3, int(np.ceil(scale.shared_share * len(members))))
    shared = counts >= needed
    if shared.sum() < (MIN_SHARED_CELLS if min_videos >= MIN_SHARED_VIDEOS else 1):
        return None
    in_shared = shared[inverse]
    # members that hold few of the shared cells on both grids are not part of the group (a
    # cell's parity is its grid: every like is in one cell of each); on one grid is enough,
    # where a batch straddles the other's window line and splits its members
    member = np.searchsorted(members, user[in_shared])
    grid = cell[in_shared] % 2
    core = np.zeros(len(members), dtype=bool)
    for g, shared_on_grid in enumerate(np.bincount(distinct[shared] % 2, minlength=2)):
        if shared_on_grid:
            held = np.bincount(member[grid == g], minlength=len(members))
            core |= held >= np.ceil(scale.shared_share * shared_on_grid)
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
    # the members' likes in the shared cells, and those cells (one `unique` for all figures)
    shared_cell, shared_like = cell[in_shared], like[in_shared]
    member_of = np.searchsorted(members, user[in_shared])
    shared_cells, first, shared_code, group_count = np.unique(
        shared_cell, return_index=True, return_inverse=True, return_counts=True
    )
    n_shared = len(shared_cells)
    videos = np.unique(events.video[shared_like])
    if len(videos) < min_videos:
        return None
    # degree-corrected expectation: a cell with n likers draws each of them in proportion to
    # their activity, so the members are expected there n * (members' cells / all cells) times
    member_weight = float(cells_per_user[members].sum()) / total_rows
    cell_size = likers[in_shared][first].astype(np.float64)
    observed = float(in_shared.sum())
    expected = float((cell_size * member_weight).sum())
    lift = observed / expected if expected > 0 else float("inf")
    contrast = observed / float(cell_size.sum()) if cell_size.sum() else 0.0
    # timing: spread of the members' likes within each shared cell
    shared_ts = events.ts[shared_like]
    order = np.lexsort((shared_ts, shared_cell))
    starts, _ = runs(shared_cell[order])
    spans = np.maximum.reduceat(shared_ts[order], starts) - np.minimum.reduceat(
        shared_ts[order], starts
    )
    spread = float(np.median(spans)) / SECOND if len(spans) else 0.0
    per_member = np.bincount(np.searchsorted(members, user), minlength=len(members))
    per_member_shared = np.bincount(member_of, minlength=len(members))
    outside = 1.0 - float(np.mean(per_member_shared / np.maximum(per_member, 1)))
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
        videos=videos.astype(np.int64),
        first_us=first_us,
        last_us=last_us,
        scale=scale.name,
        cells=shared_cells,
        member_outside=member_outside,
        member_dominated=member_dominated,
        work=np.unique(shared_like).astype(np.int64),
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
