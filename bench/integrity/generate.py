"""Like streams for the integrity benchmark: a genuine background with planted attacks.

`world_generate(seed=…, likes=…)` builds, deterministically from the seed, a stream of about
`likes` genuine like events over `days` (28) days and, unless `clean`, the planted attacks of
every family in FAMILIES on top. `world_write` writes it as SPEC §5's events CSV
(`user_id,video_id,creator_id,ts,device_id,ip`, time order) and a ground-truth CSV (one row per
account in the events: its family, or `genuine`; the attack group, its size; for a hijacked
account the span it was in the attacker's hands).

The genuine background and the attacks draw from separate random streams (children of one
SeedSequence), so the clean replay (`clean=True`, same seed) has a genuine background
byte-identical to the attacked stream's: the clean CSV is the attacked CSV less the attack
lines. The model of genuine behaviour and of each family is in docs/integrity-bench.md.

Everything is vectorised numpy; at 10M likes the arrays take ~0.5 GB and the CSV is written in
chunks of a million lines.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.integrity.attacks import Attacks
from bench.integrity.genuine import genuine_generate
from bench.integrity.world import (
    BANDS,
    FAMILIES,
    GENUINE,
    HEADER,
    START_US,
    TRUTH_HEADER,
    Events,
    Truth,
    World,
    hex_ids,
)

__all__ = [
    "BANDS",
    "FAMILIES",
    "GENUINE",
    "HEADER",
    "START_US",
    "TRUTH_HEADER",
    "Events",
    "Truth",
    "World",
    "world_generate",
    "world_write",
]

CHUNK_LINES = 1_000_000


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------
def groups_per_family_default(likes: int) -> int:
    return 6 if likes <= 2_000_000 else 9


def world_generate(
    *,
    seed: int,
    likes: int,
    days: int = 28,
    clean: bool = False,
    groups_per_family: int | None = None,
) -> World:
    genuine = genuine_generate(seed, likes, days)
    user_ids, device_ids = genuine.user_ids, genuine.device_ids
    events, truth = genuine.events, {}
    if not clean:
        attacks = Attacks(
            seed, genuine, days, groups_per_family or groups_per_family_default(likes)
        )
        attack_events = attacks.build()
        truth = attacks.truth
        user_ids = np.concatenate([user_ids, *attacks.new_user_ids])
        device_ids = np.concatenate(
            [device_ids, hex_ids(attacks.r, attacks.n_new_devices, 16, set(device_ids.tolist()))]
        )
        both = Events.concat([events, attack_events])
        # stable: the genuine lines keep their order, an attack line after a genuine one at a tie
        events = both.take(np.argsort(both.ts, kind="stable"))
    events.ts += START_US
    world = World(
        seed=seed,
        days=days,
        clean=clean,
        user_ids=user_ids,
        video_ids=genuine.video_ids,
        video_creator=genuine.video_creator,
        device_ids=device_ids,
        ips=np.array(genuine.ips.strings, dtype="S39"),
        events=events,
        truth=truth,
    )
    world.counts = _counts(world)
    return world


def _counts(world: World) -> dict[str, Any]:
    family_of = np.zeros(len(world.user_ids), dtype=np.int8)  # 0: genuine
    for user, truth in world.truth.items():
        family_of[user] = 1 + FAMILIES.index(truth.family)
    present = np.zeros(len(world.user_ids), dtype=bool)
    present[world.events.user] = True
    accounts = np.bincount(family_of[present], minlength=1 + len(FAMILIES))
    attack_likes = np.bincount(
        family_of[world.events.user[world.events.attack]], minlength=1 + len(FAMILIES)
    )
    groups = {f: len({t.group for t in world.truth.values() if t.family == f}) for f in FAMILIES}
    return {
        "likes": len(world.events),
        "attack_likes": int(world.events.attack.sum()),
        "accounts": int(present.sum()),
        "genuine_accounts": int(accounts[0]),
        "attack_accounts": int(accounts[1:].sum()),
        "videos": int((np.bincount(world.events.video) > 0).sum()),
        "families": {
            f: {
                "accounts": int(accounts[1 + i]),
                "groups": groups[f],
                "attack_likes": int(attack_likes[1 + i]),
            }
            for i, f in enumerate(FAMILIES)
        },
    }


LINE_DTYPE = np.dtype(
    [
        ("user", "S12"), ("c1", "S1"), ("video", "S12"), ("c2", "S1"), ("creator", "S12"),
        ("c3", "S1"), ("ts", "S26"), ("z", "S2"), ("device", "S16"), ("c5", "S1"),
        ("ip", "S39"), ("nl", "S1"),
    ]
)  # fmt: skip


def _iso(us: int | None) -> str:
    if us is None:
        return ""
    return str(np.datetime64(int(us), "us")) + "Z"


def world_write(world: World, events_path: Path, truth_path: Path | None = None) -> None:
    """The events CSV (time order, fixed-format fields, written a million lines at a time) and
    the ground truth (every account of the events; attack accounts with family and group)."""
    ev = world.events
    with events_path.open("wb") as out:
        out.write(HEADER)
        for start in range(0, len(ev), CHUNK_LINES):
            part = slice(start, start + CHUNK_LINES)
            user, video = ev.user[part], ev.video[part]
            rec = np.zeros(len(user), dtype=LINE_DTYPE)
            rec["user"] = world.user_ids[user]
            rec["video"] = world.video_ids[video]
            rec["creator"] = world.user_ids[world.video_creator[video]]
            rec["ts"] = np.datetime_as_string(
                ev.ts[part].astype("datetime64[us]"), unit="us"
            ).astype("S26")
            rec["device"] = world.device_ids[ev.device[part]]
            rec["ip"] = world.ips[ev.ip[part]]
            rec["c1"] = rec["c2"] = rec["c3"] = rec["c5"] = b","
            rec["z"] = b"Z,"
            rec["nl"] = b"\n"
            # fields are NUL-padded to their widths: dropping the NULs leaves the CSV line
            out.write(rec.tobytes().replace(b"\0", b""))
    if truth_path is None:
        return
    with truth_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(TRUTH_HEADER)
        for u in np.unique(ev.user).tolist():
            t = world.truth.get(u)
            user_id = world.user_ids[u].decode()
            if t is None:
                writer.writerow([user_id, GENUINE, "", "", "", ""])
            else:
                writer.writerow(
                    [
                        user_id,
                        t.family,
                        t.group,
                        t.group_size,
                        _iso(t.span_start_us),
                        _iso(t.span_end_us),
                    ]
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--likes", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--clean", action="store_true", help="the same seed without the attacks")
    parser.add_argument("--out", type=Path, required=True, help="events CSV")
    parser.add_argument("--truth", type=Path, help="ground-truth CSV")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    world = world_generate(seed=args.seed, likes=args.likes, days=args.days, clean=args.clean)
    built = time.perf_counter()
    world_write(world, args.out, args.truth)
    print(
        json.dumps(
            {
                **world.counts,
                "generate_s": round(built - started, 1),
                "write_s": round(time.perf_counter() - built, 1),
            }
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
