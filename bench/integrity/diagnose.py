"""Where the detector loses each planted group: generation and detection in memory, no CSV,
no database (seconds at 1M likes), for tuning on the tuning seeds (docs/integrity-bench.md).

    .venv/bin/python -m bench.integrity.diagnose --seed 101 [--likes N] [--clean] [--file-layout]

For every planted group: its size, how many members are flagged, how many are in some candidate
finding, and the evidence of the finding that holds most of them; then the genuine accounts
flagged, with the findings that flagged them. Never run it on the held-out seed while tuning.

`--file-layout` codes accounts and videos as `integrity_evaluate` does (numbered by first
appearance in the time-ordered file, accounts as user then creator of each line; videos from 1):
the candidate search's hashes follow the codes, so a figure can move with the layout alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict

import numpy as np

from bench.integrity.generate import World, world_generate
from integrity.detection import Events, findings, flags_of


def detection_events(world: World) -> Events:
    """The world's likes as the detection's columns, coded as `integrity_evaluate`'s loader
    codes them (device 0 is "no device"; networks are /24 and /48 prefixes)."""
    ev = world.events
    ips = [ip.decode() for ip in world.ips.tolist()]
    prefix = [
        ip.rsplit(".", 1)[0] if "." in ip else ":".join(ip.split(":")[:3]) if ip else ""
        for ip in ips
    ]
    _, subnet_codes = np.unique(np.array(prefix, dtype=object).astype(str), return_inverse=True)
    ip_known = np.array([bool(ip) for ip in ips])
    ip = np.where(ip_known[ev.ip], ev.ip, -1).astype(np.int64)
    subnet = np.where(ip_known[ev.ip], subnet_codes[ev.ip], -1).astype(np.int64)
    device = np.where(ev.device > 0, ev.device, -1).astype(np.int64)
    return Events(
        user=ev.user.astype(np.int32),
        video=ev.video.astype(np.int32),
        creator=world.video_creator[ev.video].astype(np.int32),
        ts=ev.ts.astype(np.int64),
        device=device.astype(np.int32),
        ip=ip.astype(np.int32),
        user_ids=[u.decode() for u in world.user_ids.tolist()],
        subnet=subnet.astype(np.int32),
    )


def first_appearance(values: np.ndarray) -> np.ndarray:
    """Per value (0..max): its rank by first appearance in `values` (-1: absent)."""
    distinct, first = np.unique(values, return_index=True)
    rank = np.full(int(values.max()) + 1, -1, dtype=np.int64)
    rank[distinct[np.argsort(first, kind="stable")]] = np.arange(len(distinct))
    return rank


def file_layout(world: World, events: Events) -> tuple[Events, np.ndarray]:
    """`events` recoded as `integrity_evaluate` codes the world's CSV (its lines in this
    order), and per new account code the world's account."""
    seq = np.empty(2 * len(events), dtype=np.int64)
    seq[0::2] = world.events.user
    seq[1::2] = world.video_creator[world.events.video]
    number = first_appearance(seq) + 1  # account numbers from 1, users and creators
    liked_by, user = np.unique(number[world.events.user], return_inverse=True)
    world_of_number = np.full(int(number.max()) + 1, -1, dtype=np.int64)
    world_of_number[number[number > 0]] = np.flatnonzero(number > 0)
    video = first_appearance(world.events.video) + 1
    recoded = Events(
        user=user.astype(np.int32),
        video=video[world.events.video].astype(np.int32),
        creator=number[world.video_creator[world.events.video]].astype(np.int32),
        ts=events.ts,
        device=events.device,
        ip=events.ip,
        user_ids=[str(n) for n in liked_by.tolist()],
        subnet=events.subnet,
    )
    return recoded, world_of_number[liked_by]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--likes", type=int, default=1_000_000)
    parser.add_argument("--clean", action="store_true")
    parser.add_argument("--file-layout", action="store_true")
    args = parser.parse_args(argv)
    if args.seed == 404:
        print("404 is the held-out seed: not for tuning", file=sys.stderr)
    started = time.perf_counter()
    world = world_generate(seed=args.seed, likes=args.likes, clean=args.clean)
    events = detection_events(world)
    world_of = np.arange(events.users)
    if args.file_layout:
        events, world_of = file_layout(world, events)
    generated = time.perf_counter()
    found = findings(events)
    flags = {int(world_of[flag.user]) for flag in flags_of(found)}
    detected = time.perf_counter()
    print(
        f"seed {args.seed}: {len(events):,} likes, generated {generated - started:.1f}s, "
        f"detected {detected - generated:.1f}s, {len(found)} findings, {len(flags)} flagged"
    )
    finding_of: dict[int, int] = {}
    for i, finding in enumerate(found):
        for member in world_of[finding.group.members].tolist():
            finding_of.setdefault(member, i)
    groups: dict[str, list[int]] = defaultdict(list)
    for user, truth in world.truth.items():
        groups[truth.group].append(user)
    for name in sorted(groups, key=lambda g: (g.rsplit("-", 1)[0], int(g.rsplit("-", 1)[1]))):
        members = groups[name]
        flagged = sum(m in flags for m in members)
        held = Counter(finding_of[m] for m in members if m in finding_of)
        line = (
            f"  {name:16} {len(members):4} members  flagged {flagged:4}  "
            f"in findings {sum(held.values()):4}"
        )
        if held:
            best, count = held.most_common(1)[0]
            f = found[best]
            g = f.group
            evidence = ", ".join(f"{k} {v:.2f}" for k, v in f.evidence.items())
            line += (
                f"  | top finding {count}/{len(g.members)}: lift {g.lift:.1f} contrast "
                f"{g.contrast:.2f} cells {g.shared_cells} part {g.participation:.2f} outside "
                f"{g.outside_share:.2f} spread {g.spread_s:.0f}s {g.source}/{g.scale} [{evidence}]"
            )
        print(line)
    genuine_flagged = [u for u in flags if u not in world.truth]
    print(f"genuine flagged: {len(genuine_flagged)}")
    for i in sorted({finding_of[u] for u in genuine_flagged if u in finding_of}):
        f = found[i]
        n = sum(1 for m in world_of[f.group.members].tolist() if m not in world.truth)
        g = f.group
        print(
            f"  finding {i}: {n} genuine of {len(g.members)} ({g.source}, {g.scale}): lift "
            f"{g.lift:.1f} contrast {g.contrast:.2f} cells {g.shared_cells} videos "
            f"{len(g.videos)} part {g.participation:.2f} outside {g.outside_share:.2f} "
            f"evidence {f.evidence}"
        )
    sources = Counter((f.group.source, f.group.scale, f.flagged) for f in found)
    print("findings by (source, scale, flagged):", dict(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
