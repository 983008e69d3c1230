"""Detection: like events as columns in, findings out (docs/integrity.md, "Detection").

`detect(events)` runs the signals over `Events` and returns the accounts the pass would flag,
with a score and the kinds of evidence that agreed. An account is flagged only when its
behaviour (a lockstep group judged against what its members' own activity predicts, or a
burst) and at least one independent kind of evidence — shared devices or networks that few
others use, a device per like, one device and one address of its own for every like, inhuman
velocity, each video's likes paced evenly over half a day or more — agree, and the account is
backed by such evidence of its own; a thin history adds to the score but carries no flag.
Behaviour alone is a finding (`findings`), a case for staff when strong (`Finding.for_review`),
never a flag.

The production passes (light, every few minutes; nightly over 28 days) and
`integrity_evaluate` both read their events into `Events` and call the same functions.
"""

from dataclasses import dataclass, field, replace

import numpy as np

from integrity.detection.cells import DAYS, MINUTES, SCALES, Cells
from integrity.detection.events import Events, events_from_columns
from integrity.detection.lockstep import (
    Group,
    groups_completed,
    judge_accounts,
    lockstep,
    value_groups,
    worth_judging,
)
from integrity.detection.signals import (
    bursts,
    member_concentration,
    member_share,
    paced,
    paced_completion,
    pinned_accounts,
    shared_values,
    single_use,
    velocity,
)

__all__ = [
    "Events",
    "Finding",
    "Flag",
    "detect",
    "distinct",
    "events_from_columns",
    "findings",
    "flags_of",
]

# Evidence thresholds (docs/integrity.md): tuned on the generator's seeds.
MIN_LIFT = 5.0  # members' co-likes at least 5x what their activity and the cells predict
# a network (/24, /48) used by more accounts says nothing (NAT, carrier); one used by fewer
# counts where members hold a few of its addresses (devices and addresses count only where
# their accounts are mostly the group's)
NETWORK_CROWD = 50
CONCENTRATION = 0.5  # share of members behind such devices or networks (farms: 0.7-1.0)
HISTORY_OUTSIDE = 0.5  # members whose cells are mostly the group's (their own history is thin)
# ... at the hours and days scales, where a light user's few likes in a chat's shares are
# already half its history, thin means thinner
HISTORY_OUTSIDE_COARSE = 0.3
# ... and only where the group is a visible share of its cells' likers: a chat of light users
# whose likes are mostly the chat's shares has a thin history too, but the videos it shares
# are liked by many others (contrast ~0.01-0.1), a farm's targets mostly by the farm
HISTORY_CONTRAST = 0.2
ROTATING_DEVICES = 0.5  # share of members whose likes in the group each use a new device
PINNED_MIN_VIDEOS = 8  # pinned members count in groups working this many videos (farms: 15+)
VELOCITY_PER_MINUTE = 30  # likes in one minute no person keeps up
# paced delivery (hours and days scales): the group's likes of each of its videos spread over
# half a day or more (median over the videos), on this many videos of this many creators (a
# small creator's few loyal fans catch up on its videos over days: one creator), where the
# group is a visible share of the likers (people whose likes spread over days are a sliver of
# a video's audience: contrast <= 0.03 at 1M likes, <= 0.001 at 10M on the tuning seeds); a
# member counts when it liked this share of the group's videos
PACED_SECONDS = 12 * 3600
PACED_MIN_VIDEOS = 6
PACED_MIN_CREATORS = 5
PACED_CONTRAST = 0.05
PACED_MEMBER_VIDEOS = 0.3
# a finding that is not flagged is a case for staff when its behaviour is strong by itself
REVIEW_LOCKSTEP = 0.5  # most members on most of ten or so cells
REVIEW_CONTRAST = 0.5  # cells that are mostly the group's likes


# What the accounts did together (a lockstep group; a burst on one video); every other kind is
# evidence of another sort (devices, networks, history, speed) that must agree before a flag.
BEHAVIOUR = ("lockstep", "fresh_burst")
# Evidence that strengthens a finding but never carries a flag alone: a thin history is what a
# chat of light users has too (their likes are mostly the chat's shares).
SUPPORTING = ("thin_history",)


@dataclass(frozen=True)
class Flag:
    """An account the pass flags: its code in `Events`, a score in (0, 1], the evidence kinds."""

    user: int
    score: float
    signals: tuple[str, ...]


@dataclass
class Finding:
    """A group with the evidence it has: flagged when `independent` is non-empty."""

    group: Group
    evidence: dict[str, float] = field(default_factory=dict)
    # per member (aligned with group.members): evidence of its own that it belongs — its likes
    # behind the group's devices or networks, a history that is mostly the group's, inhuman
    # speed. A flagged finding flags only these members (a genuine account that happens to
    # hold some of a big group's cells has none).
    members_backed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def independent(self) -> list[str]:
        return [kind for kind in self.evidence if kind not in BEHAVIOUR + SUPPORTING]

    @property
    def flagged(self) -> bool:
        return any(kind in self.evidence for kind in BEHAVIOUR) and bool(self.independent)

    @property
    def for_review(self) -> bool:
        """Worth a staff case though not flagged: behaviour strong by itself — most members
        on most of ten or so cells (lockstep >= 0.5) that are mostly the group's likes
        (contrast >= 0.5) — or evidence of another kind. The co-liking groups below that
        (chats, chance groups in small data: hundreds per pass) are findings, not cases."""
        if self.flagged:
            return False
        if any(kind not in BEHAVIOUR for kind in self.evidence):
            return True
        return (
            self.evidence.get("lockstep", 0.0) >= REVIEW_LOCKSTEP
            and self.group.contrast >= REVIEW_CONTRAST
        )

    @property
    def score(self) -> float:
        # each agreeing kind closes part of the remaining doubt
        doubt = 1.0
        for value in self.evidence.values():
            doubt *= 1.0 - min(max(value, 0.0), 0.99)
        return 1.0 - doubt


def findings(events: Events) -> list[Finding]:
    """Every lockstep group with the kinds of evidence that agree with it."""
    if len(events) == 0:
        return []
    fast = velocity(events)[60]
    groups = candidate_groups(events)
    device_sharers = shared_values(events, events.device)
    network_sharers = shared_values(events, events.networks)
    address_sharers = shared_values(events, events.ip)
    single_use_device = single_use(events.device)
    pinned = pinned_accounts(events, device_sharers, address_sharers)
    found: list[Finding] = []
    likes_of: np.ndarray | None = None  # every account's likes, once a paced group needs them
    for group in groups:
        evidence: dict[str, float] = {
            "lockstep": min(1.0, group.participation * min(group.shared_cells, 10) / 10)
        }
        on_devices = member_concentration(events, group, events.device, device_sharers) >= 0.5
        device = float(np.mean(on_devices))
        if device >= CONCENTRATION:
            evidence["device_cluster"] = device
        # by /24 (/48) network, or by address: a farm's proxies in a hosting block that VPN
        # exits share are the group's own addresses still
        on_networks = (
            member_concentration(events, group, events.networks, network_sharers, NETWORK_CROWD)
            >= 0.5
        ) | (member_concentration(events, group, events.ip, address_sharers) >= 0.5)
        network = float(np.mean(on_networks))
        if network >= CONCENTRATION:
            evidence["network_cluster"] = network
        thin = HISTORY_OUTSIDE if group.scale == MINUTES.name else HISTORY_OUTSIDE_COARSE
        if group.outside_share <= thin and group.contrast >= HISTORY_CONTRAST:
            evidence["thin_history"] = 1.0 - group.outside_share
        # a device per like, never seen again (an emulator reset for every like): members
        # with several likes in the group's cells, most of them each on a device of its own
        # (a light user's only phone is single-use too, but holds one like)
        work = group.work
        on_fresh_devices = (
            member_share(group.members, events.user[work], single_use_device[work], at_least=3)
            >= 0.5
        )
        spoofed = float(np.mean(on_fresh_devices))
        if spoofed >= ROTATING_DEVICES:
            evidence["spoofed_devices"] = spoofed
        # each member alone on one device and one address for every like it made, and in
        # the group by cells the group dominates (not a heavy user among its cover likes)
        is_pinned = pinned[group.members]
        if len(group.member_dominated) == len(group.members):
            is_pinned &= group.member_dominated >= 0.5
        share_pinned = float(np.mean(is_pinned))
        # only for a group whose behaviour is strong — most of its members together on many
        # videos — where friends who keep to one phone at home like a friend's few posts
        strong_behaviour = (
            evidence["lockstep"] >= REVIEW_LOCKSTEP and len(group.videos) >= PINNED_MIN_VIDEOS
        )
        if share_pinned >= CONCENTRATION and strong_behaviour:
            evidence["pinned_context"] = share_pinned
        is_fast = fast[group.members] >= VELOCITY_PER_MINUTE
        speed = float(np.mean(is_fast))
        if speed >= CONCENTRATION:
            evidence["velocity"] = speed
        on_paced = np.zeros(len(group.members), dtype=bool)
        if (
            group.scale != MINUTES.name
            and len(group.videos) >= PACED_MIN_VIDEOS
            and group.contrast >= PACED_CONTRAST
            and len(np.unique(events.creator[group.work])) >= PACED_MIN_CREATORS
        ):
            spread, member_videos = paced(events, group)
            if spread >= PACED_SECONDS:
                on_paced = member_videos >= PACED_MEMBER_VIDEOS
                share_paced = float(np.mean(on_paced))
                if share_paced >= CONCENTRATION:
                    evidence["paced_delivery"] = share_paced
        backed = np.zeros(len(group.members), dtype=bool)
        if "device_cluster" in evidence:
            backed |= on_devices
        if "network_cluster" in evidence:
            backed |= on_networks
        if "thin_history" in evidence and len(group.member_outside) == len(group.members):
            backed |= group.member_outside <= thin
        if "spoofed_devices" in evidence:
            backed |= on_fresh_devices
        if "pinned_context" in evidence:
            backed |= is_pinned
        if "velocity" in evidence:
            backed |= is_fast
        if "paced_delivery" in evidence:
            backed |= on_paced
        found.append(Finding(group, evidence, backed))
        if "paced_delivery" in evidence and "lockstep" in evidence:
            if likes_of is None:
                likes_of = np.bincount(events.user, minlength=events.users)
            accounts, first, last, likes = paced_completion(events, group, likes_of)
            if len(accounts):
                joined = replace(
                    group,
                    members=accounts.astype(group.members.dtype),
                    work=likes,
                    first_us=first,
                    last_us=last,
                    member_outside=np.zeros(0),
                    member_dominated=np.zeros(0),
                )
                found.append(Finding(joined, dict(evidence), np.ones(len(accounts), dtype=bool)))
    single_use_address = single_use(events.ip)
    for group in bursts(events):
        # every like of the burst is from an account with almost no history on a device no
        # other like used: the burst (behaviour) and the spoofed devices (technical) agree;
        # single-use addresses add to the score
        evidence = {"fresh_burst": group.contrast, "spoofed_devices": 1.0}
        proxies = float(np.mean(single_use_address[group.work]))
        if proxies >= 0.5:
            evidence["spoofed_addresses"] = proxies
        found.append(Finding(group, evidence, np.ones(len(group.members), dtype=bool)))
    return found


SAME_FINDING = 0.9  # a finding whose members are this much of one kept finding's is that one


def distinct(found: list[Finding], users: int) -> list[Finding]:
    """One finding per group of accounts, for the cases: a farm seen at several scales, or as a
    lockstep group and as bursts, is kept once — flagged findings first, then those backing
    more members, then bigger ones; a finding whose members are mostly one kept finding's is
    dropped. (The flags, `detect`, come from every finding: a dropped one may back a member or
    two that the kept one does not.)"""
    order = sorted(
        range(len(found)),
        key=lambda i: (
            not found[i].flagged,
            -int(found[i].members_backed.sum()),
            -len(found[i].group.members),
            i,
        ),
    )
    owner = np.full(users, -1, dtype=np.int64)
    kept: list[int] = []
    for i in order:
        members = found[i].group.members
        held = owner[members]
        held = held[held >= 0]
        if len(held) and np.bincount(held).max() >= SAME_FINDING * len(members):
            continue
        kept.append(i)
        members_new = members[owner[members] < 0]
        owner[members_new] = i
    return [found[i] for i in sorted(kept)]


# Candidates among the accounts behind one device or address: more than a small household,
# fewer than a carrier's address; the group their behaviour forms must then be a strong one
# (the shared value is how it was found, so it is not evidence twice over): far above what its
# members' activity predicts, on two cells at least or as most of one cell's likers.
VALUE_GROUP_SMALLEST = 5
VALUE_GROUP_CROWD = 120
VALUE_GROUP_LIFT = 100.0
VALUE_GROUP_CONTRAST = 0.5


def _strong(group: Group) -> bool:
    if group.source == "co_likes":
        return group.lift >= MIN_LIFT
    return group.lift >= VALUE_GROUP_LIFT and (
        group.shared_cells >= 2 or group.contrast >= VALUE_GROUP_CONTRAST
    )


def candidate_groups(events: Events) -> list[Group]:
    """Lockstep groups at every scale, found by co-liking (MinHash) and among the accounts
    behind one device or address; one group per distinct set of members (the finest scale's)."""
    device_groups = value_groups(
        events, events.device, smallest=VALUE_GROUP_SMALLEST, crowd=VALUE_GROUP_CROWD
    )
    network_groups = value_groups(
        events, events.ip, smallest=VALUE_GROUP_SMALLEST, crowd=VALUE_GROUP_CROWD
    )
    seen: set[bytes] = set()
    groups: list[Group] = []
    for scale in SCALES:
        cells = Cells.of(events, scale)
        found = lockstep(events, cells)
        value_candidates = [("device", device_groups), ("network", network_groups)]
        if scale.seconds >= DAYS.seconds:
            value_candidates = []  # a days cell is nearly a video: a household's fans share it
        for source, candidates in value_candidates:
            for index in worth_judging(candidates, cells):
                group = judge_accounts(events, candidates[index], cells, source)
                if group is not None:
                    found.append(group)
        found = groups_completed(events, [g for g in found if _strong(g)], cells, _strong)
        del cells
        for group in found:
            key = group.members.astype(np.int64).tobytes()
            if _strong(group) and key not in seen:
                seen.add(key)
                groups.append(group)
    return groups


def detect(events: Events) -> list[Flag]:
    """The accounts flagged (independent evidence agrees), best score first."""
    return flags_of(findings(events))


def flags_of(found: list[Finding]) -> list[Flag]:
    """The accounts these findings flag, best score first (an account in several findings
    keeps its best)."""
    best: dict[int, Flag] = {}
    for finding in found:
        if not finding.flagged:
            continue
        kinds = tuple(sorted(finding.evidence))
        for user in finding.group.members[finding.members_backed].tolist():
            flag = Flag(int(user), round(finding.score, 6), kinds)
            if user not in best or best[user].score < flag.score:
                best[user] = flag
    return sorted(best.values(), key=lambda f: (-f.score, f.user))
