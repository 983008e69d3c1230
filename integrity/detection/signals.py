"""The other signals over columnar like events (docs/integrity.md, "Detection"): velocity,
devices and networks, pinned accounts, bursts. Each reads `Events` (numpy arrays, sorted by
time) and returns per-like or per-account figures or burst groups; `integrity.detection`
combines them with the lockstep groups (`integrity.detection.lockstep`). Everything is a sort,
a segment reduction or a hash: linear (n log n) in the events."""

import numpy as np

from integrity.detection.arrays import Int, components, distinct_count, runs
from integrity.detection.cells import SECOND, cell_runs
from integrity.detection.events import Events
from integrity.detection.lockstep import Group

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


CROWD_OF_MEMBERS = 3  # members on one value that others use too, before it says anything


def member_concentration(
    events: Events, group: Group, values: Int, sharers_of: Int, crowd: int = 0
) -> np.ndarray:
    """Per member, the share of its likes in the group's cells (`group.work`) that come through
    values (devices, addresses, networks) that are mostly the group's, or — with a `crowd` —
    that at least CROWD_OF_MEMBERS members share and at most `crowd` accounts use in all (a
    farm's proxies in a network block that VPN users share too): 1.0 for a farm behind a few
    devices, ~0 for accounts on their own devices or behind a carrier's pool (a hijacked
    account's own history, on its owner's phone and home network, is not in the group's
    cells). `sharers_of`: per like, the accounts behind its value (`shared_values`, once per
    pass)."""
    members = group.members
    rows = group.work[values[group.work] >= 0]
    if len(rows) == 0:
        return np.zeros(len(members))
    value = values[rows]
    user = events.user[rows]
    sharers = sharers_of[rows]  # accounts behind the value, members or not
    member_count = distinct_count(value, user)  # every row here is a member's
    # the group's own value — not two or three members among the accounts of a carrier's
    # address or an office (a household, colleagues: in a small, dense pass, chance puts
    # some of any group's members behind one shared address)
    mostly_members = 2 * member_count >= sharers
    few_others = (sharers <= crowd) & (member_count >= CROWD_OF_MEMBERS)
    suspicious = (member_count >= 2) & (mostly_members | few_others)
    return member_share(members, user, suspicious)


def member_share(members: Int, user: Int, hit: np.ndarray, at_least: int = 1) -> np.ndarray:
    """Per member (`members` sorted): the share of its rows (`user`, one per row) for which
    `hit` holds; 0 for a member with fewer than `at_least` rows."""
    member = np.searchsorted(members, user)
    total = np.bincount(member, minlength=len(members))
    hits = np.bincount(member[hit], minlength=len(members))
    share: np.ndarray = np.where(total >= at_least, hits / np.maximum(total, 1), 0.0)
    return share


# --- paced delivery ---------------------------------------------------------------------------
# People who like the same videos do it close together: a chat's share, a notification, a
# moment going viral bring them within minutes or hours of each other; those whose likes of a
# video do spread over days (fans catching up) are a sliver of its audience. A service selling
# likes by the day releases each order's likes evenly over a day or more.
def paced(events: Events, group: Group) -> tuple[float, np.ndarray]:
    """How the group's likes of each of its videos arrive: the median, over its videos with 3
    or more of them, of the time between their 10th and 90th percentile (seconds); and per
    member (aligned with group.members) the share of the group's videos it liked."""
    work = group.work
    video = events.video[work].astype(np.int64)
    ts = events.ts[work]
    order = np.lexsort((ts, video))
    video, ts = video[order], ts[order]
    starts, lengths = runs(video)
    enough = lengths >= 3
    spread = 0.0
    if enough.any():
        first, count = starts[enough], lengths[enough] - 1
        low = ts[first + (count * 0.1).astype(np.int64)]
        high = ts[first + np.ceil(count * 0.9).astype(np.int64)]
        spread = float(np.median(high - low)) / SECOND
    # each (member, video) once: the members' likes are the group's work
    stride = int(video.max(initial=0)) + 1
    pairs = np.unique(events.user[work].astype(np.int64) * stride + events.video[work])
    member = np.searchsorted(group.members, pairs // stride)
    liked = np.bincount(member, minlength=len(group.members))
    return spread, liked / max(len(starts), 1)


# The candidate search misses members of a paced group that took a smaller share of its orders
# (MinHash bands need close neighbours; and a days-scale group is not completed by its cells, a
# days cell being nearly a video). Completed here, for a paced group only: accounts that liked
# a third of its videos (3 at least), each inside the span of the group's own likes of it, with
# those likes a fifth or more of everything they liked (a heavy user's few likes of the same
# videos are not).
PACED_COMPLETION_VIDEOS = 0.34
PACED_COMPLETION_SHARE = 0.2


def paced_completion(events: Events, group: Group, likes_of: Int) -> tuple[Int, Int, Int, Int]:
    """Accounts outside `group` that took part in its paced orders (`likes_of`: every
    account's likes): (accounts sorted, their first and last such like in µs, those likes'
    indices)."""
    work = group.work
    videos = np.unique(events.video[work])
    lows = np.full(len(videos), np.iinfo(np.int64).max, dtype=np.int64)
    highs = np.full(len(videos), np.iinfo(np.int64).min, dtype=np.int64)
    slot = np.searchsorted(videos, events.video[work])
    np.minimum.at(lows, slot, events.ts[work])
    np.maximum.at(highs, slot, events.ts[work])
    on = np.flatnonzero(np.isin(events.video, videos))
    at = np.searchsorted(videos, events.video[on])
    inside = (events.ts[on] >= lows[at]) & (events.ts[on] <= highs[at])
    inside &= ~np.isin(events.user[on], group.members)
    likes = on[inside]
    empty = np.zeros(0, dtype=np.int64)
    if len(likes) == 0:
        return empty, empty, empty, empty
    user = events.user[likes].astype(np.int64)
    stride = int(videos.max()) + 1
    pairs = np.unique(user * stride + events.video[likes])
    accounts, took = np.unique(pairs // stride, return_counts=True)
    total = likes_of[accounts]
    mine = np.bincount(np.searchsorted(accounts, user), minlength=len(accounts))
    keep = (took >= max(3, int(np.ceil(PACED_COMPLETION_VIDEOS * len(videos))))) & (
        mine >= PACED_COMPLETION_SHARE * total
    )
    accounts = accounts[keep]
    likes = likes[np.isin(user, accounts)]
    member = np.searchsorted(accounts, events.user[likes])
    first = np.full(len(accounts), np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(len(accounts), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, member, events.ts[likes])
    np.maximum.at(last, member, events.ts[likes])
    return accounts, first, last, np.sort(likes).astype(np.int64)


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
