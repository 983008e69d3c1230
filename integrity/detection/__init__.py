"""Detection: like events as columns in, findings out (docs/integrity.md, "Detection").

`detect(events)` runs the signals over `Events` and returns the accounts the pass would flag,
with a score and the kinds of evidence that agreed. An account is flagged only when its
behaviour (a lockstep group judged against what its members' own activity predicts) and at
least one independent kind of evidence — shared devices or networks that few others use, a
history that is little more than the group's work, inhuman velocity — agree; a single kind of
evidence is a finding for staff (`findings`), never a flag by itself.

The production passes (light, every few minutes; nightly over 28 days) and
`integrity_evaluate` both read their events into `Events` and call the same functions.
"""

from dataclasses import dataclass, field

import numpy as np

from integrity.detection.events import Events, events_from_columns
from integrity.detection.signals import (
    Group,
    group_concentration,
    lockstep,
    velocity,
)

__all__ = ["Events", "Finding", "Flag", "detect", "events_from_columns", "findings"]

# Evidence thresholds (docs/integrity.md): tuned on the generator's seeds.
MIN_LIFT = 5.0  # members' co-likes at least 5x what their activity and the cells predict
DEVICE_CROWD = 20  # a device used by more accounts than this says nothing (a shared kiosk)
NETWORK_CROWD = 50  # a network (/24, /48) used by more accounts says nothing (NAT, carrier)
CONCENTRATION = 0.3  # share of members behind such devices or networks
HISTORY_OUTSIDE = 0.5  # members whose cells are mostly the group's (their own history is thin)
VELOCITY_PER_MINUTE = 30  # likes in one minute no person keeps up


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

    @property
    def independent(self) -> list[str]:
        return [kind for kind in self.evidence if kind != "lockstep"]

    @property
    def flagged(self) -> bool:
        return "lockstep" in self.evidence and bool(self.independent)

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
    found: list[Finding] = []
    for group in lockstep(events):
        if group.lift < MIN_LIFT:
            continue
        evidence: dict[str, float] = {
            "lockstep": min(1.0, group.participation * min(group.shared_cells, 10) / 10)
        }
        device = group_concentration(events, group, events.device, DEVICE_CROWD)
        if device >= CONCENTRATION:
            evidence["device_cluster"] = device
        network = group_concentration(events, group, events.networks, NETWORK_CROWD)
        if network >= CONCENTRATION:
            evidence["network_cluster"] = network
        if group.outside_share <= HISTORY_OUTSIDE:
            evidence["thin_history"] = 1.0 - group.outside_share
        speed = float(np.mean(fast[group.members] >= VELOCITY_PER_MINUTE))
        if speed >= CONCENTRATION:
            evidence["velocity"] = speed
        found.append(Finding(group, evidence))
    return found


def detect(events: Events) -> list[Flag]:
    """The accounts flagged (independent evidence agrees), best score first."""
    best: dict[int, Flag] = {}
    for finding in findings(events):
        if not finding.flagged:
            continue
        kinds = tuple(sorted(finding.evidence))
        for user in finding.group.members.tolist():
            flag = Flag(int(user), round(finding.score, 6), kinds)
            if user not in best or best[user].score < flag.score:
                best[user] = flag
    return sorted(best.values(), key=lambda f: (-f.score, f.user))
