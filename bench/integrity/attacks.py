"""The planted attacks, one method per family (docs/integrity-bench.md, "Attack families")."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.integrity.genuine import Genuine
from bench.integrity.world import (
    BANDS,
    DAY_US,
    FAMILIES,
    HOUR_US,
    MINUTE_US,
    Events,
    Truth,
    events_of,
    hex_ids,
    hosting_v4,
    public_v4,
    times_by_rhythm,
)

# ---------------------------------------------------------------------------------------------
# Attacks
# ---------------------------------------------------------------------------------------------
UNCHOSEN = -1


class Attacks:
    def __init__(self, seed: int, genuine: Genuine, days: int, groups_per_family: int) -> None:
        self.r = np.random.default_rng(np.random.SeedSequence([seed, 0xA77]))
        self.g = genuine
        self.days = days
        self.horizon = days * DAY_US
        self.groups = groups_per_family
        self.n_genuine_users = len(genuine.user_ids)
        self.new_user_ids: list[np.ndarray] = []
        self.n_new_users = 0
        self.n_new_devices = 0
        self.parts: list[Events] = []
        self.truth: dict[int, Truth] = {}
        self.taken_ids = set(genuine.user_ids.tolist())

    # --- accounts, devices, addresses ---
    def accounts(self, n: int) -> np.ndarray:
        ids = hex_ids(self.r, n, 12, self.taken_ids)
        self.taken_ids.update(ids.tolist())
        self.new_user_ids.append(ids)
        first = self.n_genuine_users + self.n_new_users
        self.n_new_users += n
        return np.arange(first, first + n, dtype=np.int32)

    def devices(self, n: int) -> np.ndarray:
        first = len(self.g.device_ids) + self.n_new_devices
        self.n_new_devices += n
        return np.arange(first, first + n, dtype=np.int32)

    def datacenter_ips(self, n: int) -> np.ndarray:
        return self.g.ips.add_v4(hosting_v4(self.r, n))

    def proxy_ips(self, n: int) -> np.ndarray:
        return self.g.ips.add_v4(public_v4(self.r, n))

    def sizes(self) -> list[int]:
        out = []
        for i in range(self.groups):
            low, high = BANDS[i % len(BANDS)]
            out.append(round(np.exp(self.r.uniform(np.log(low), np.log(high + 0.49)))))
        return out

    def job_time(self, margin_days: float = 1.0) -> int:
        return int(self.r.uniform(margin_days * DAY_US, self.horizon - margin_days * DAY_US))

    # --- planting ---
    def add(
        self, family: str, group: str, members: np.ndarray, events: Events, **truth: Any
    ) -> None:
        self.parts.append(events)
        for m in members.tolist():
            self.truth.setdefault(m, Truth(family, group, len(members), **truth))

    def jobs(
        self,
        members: np.ndarray,
        *,
        n_jobs: int,
        window_us: int,
        participation: float,
        device: np.ndarray,
        ip: np.ndarray,
        targets: str = "recent",
        span: tuple[int, int] | None = None,
    ) -> Events:
        """Every job: one target video, the members that take part like it within the window.
        `device` / `ip` give each member's (aligned with members)."""
        parts = []
        used: set[int] = set()
        for _ in range(n_jobs):
            if span is None:
                t0 = self.job_time()
            else:
                t0 = int(self.r.uniform(span[0], max(span[0] + 1, span[1] - window_us)))
            if targets == "hot":
                video = int(self.r.choice(self.g.videos.hottest(t0, 5)))
            else:
                video = self.g.videos.recent(self.r, t0, 3 * DAY_US)
            if video in used:
                continue
            used.add(video)
            take = self.r.random(len(members)) < participation
            if take.sum() < 2:
                take[:2] = True
            k = int(take.sum())
            ts = t0 + (self.r.random(k) * window_us).astype(np.int64)
            parts.append(
                events_of(members[take], np.full(k, video), ts, device[take], ip[take], True)
            )
        return Events.concat(parts)

    def camouflage_likes(
        self, members: np.ndarray, per_member: np.ndarray, device: np.ndarray, ip: np.ndarray
    ) -> Events:
        """Likes on what is popular at random moments (to look like everybody else)."""
        who = np.repeat(np.arange(len(members)), per_member)
        ts = times_by_rhythm(self.r, len(who), self.days, np.zeros(len(who), dtype=np.int64))
        # (the videos are drawn for all cover likes at once in build: UNCHOSEN until then)
        return events_of(members[who], np.full(len(who), UNCHOSEN), ts, device[who], ip[who], True)

    # --- families ---
    def lockstep(self) -> None:
        for i, n in enumerate(self.sizes()):
            members = self.accounts(n)
            ips = self.datacenter_ips(int(self.r.integers(1, 5)))
            ev = self.jobs(
                members,
                n_jobs=int(self.r.integers(15, 41)),
                window_us=int(self.r.uniform(2, 10) * MINUTE_US),
                participation=self.r.uniform(0.9, 1.0),
                device=self.devices(n),
                ip=ips[np.arange(n) % len(ips)],
            )
            self.add("lockstep", f"lockstep-{i}", members, ev)

    def camouflage(self) -> None:
        for i, n in enumerate(self.sizes()):
            members = self.accounts(n)
            device, ip = self.devices(n), self.proxy_ips(n)
            n_jobs = int(self.r.integers(15, 41))
            ev = self.jobs(
                members,
                n_jobs=n_jobs,
                window_us=int(self.r.uniform(3, 15) * MINUTE_US),
                participation=self.r.uniform(0.85, 1.0),
                device=device,
                ip=ip,
            )
            cover = self.camouflage_likes(
                members, self.r.integers(n_jobs, 2 * n_jobs + 1, n), device, ip
            )
            self.add("camouflage", f"camouflage-{i}", members, Events.concat([ev, cover]))

    def hijacked(self) -> None:
        # owners with a history of their own; never a creator
        eligible = np.flatnonzero(self.g.likes_per_user >= 8)
        eligible = np.setdiff1d(eligible, self.g.creator_users)
        for i, n in enumerate(self.sizes()):
            members = self.r.choice(eligible, n, replace=False).astype(np.int32)
            eligible = np.setdiff1d(eligible, members)
            start = int(self.r.uniform(2 * DAY_US, self.horizon - 6 * DAY_US))
            end = start + int(self.r.uniform(1, 4) * DAY_US)
            ips = np.concatenate([self.datacenter_ips(3), self.proxy_ips(max(1, n // 10))])
            ev = self.jobs(
                members,
                n_jobs=int(self.r.integers(8, 21)),
                window_us=int(self.r.uniform(10, 30) * MINUTE_US),
                participation=self.r.uniform(0.8, 0.95),
                device=self.devices(n),
                ip=ips[self.r.integers(0, len(ips), n)],
                span=(start, end),
            )
            self.add("hijacked", f"hijacked-{i}", members, ev, span_start_us=start, span_end_us=end)

    def jittered(self) -> None:
        for i, n in enumerate(self.sizes()):
            members = self.accounts(n)
            pool = self.proxy_ips(max(5, n))
            ev = self.jobs(
                members,
                n_jobs=int(self.r.integers(15, 41)),
                window_us=int(self.r.uniform(1, 6) * HOUR_US),
                participation=self.r.uniform(0.5, 0.8),
                device=self.devices(n),
                ip=pool[self.r.integers(0, len(pool), n)],
            )
            # a new proxy address for every like
            ev.ip = pool[self.r.integers(0, len(pool), len(ev))]
            self.add("jittered", f"jittered-{i}", members, ev)

    def slow_drip(self) -> None:
        carrier = np.concatenate(self.g.carrier_ips)
        for i, n in enumerate(self.sizes()):
            members = self.accounts(n)
            device = self.devices(n)
            ev = self.jobs(
                members,
                n_jobs=int(self.r.integers(8, 21)),
                window_us=int(self.r.uniform(1, 3) * DAY_US),
                participation=self.r.uniform(0.6, 0.9),
                device=device,
                ip=carrier[self.r.integers(0, len(carrier), n)],
            )
            ev.ip = carrier[self.r.integers(0, len(carrier), len(ev))]  # mobile proxies
            cover = self.camouflage_likes(
                members,
                self.r.integers(3, 11, n),
                device,
                carrier[self.r.integers(0, len(carrier), n)],
            )
            self.add("slow_drip", f"slow_drip-{i}", members, Events.concat([ev, cover]))

    def one_shot(self) -> None:
        orders = self.sizes()
        pool = self.accounts(max(int(sum(orders) * 0.6), int(max(orders) * 1.3)))
        served: dict[int, int] = {}
        parts = []
        for i, k in enumerate(orders):
            members = self.r.choice(pool, k, replace=False)
            t0 = self.job_time()
            video = self.g.videos.recent(self.r, t0, 3 * DAY_US)
            ts = t0 + (self.r.random(k) * self.r.uniform(5, 30) * MINUTE_US).astype(np.int64)
            # a spoofed device and a proxy address on every like
            parts.append(
                events_of(members, np.full(k, video), ts, self.devices(k), self.proxy_ips(k), True)
            )
            for m in members.tolist():
                if m not in served:
                    served[m] = i
                    self.truth[m] = Truth("one_shot", f"one_shot-{i}", k)
        # the pool's accounts are aged: a few likes each of their own, long before
        used = np.array(sorted(served), dtype=np.int32)
        per = self.r.integers(0, 4, len(used))
        who = np.repeat(used, per)
        ts = (self.r.random(len(who)) * self.horizon).astype(np.int64)
        parts.append(
            events_of(
                who,
                np.full(len(who), UNCHOSEN),
                ts,
                self.devices(len(who)),
                self.proxy_ips(len(who)),
                True,
            )
        )
        self.parts.append(Events.concat(parts))

    def hot_target(self) -> None:
        for i, n in enumerate(self.sizes()):
            members = self.accounts(n)
            ips = self.datacenter_ips(max(2, n // 20))
            ev = self.jobs(
                members,
                n_jobs=int(self.r.integers(5, 16)),
                window_us=int(self.r.uniform(5, 20) * MINUTE_US),
                participation=self.r.uniform(0.85, 1.0),
                device=self.devices(n),
                ip=ips[np.arange(n) % len(ips)],
                targets="hot",
            )
            self.add("hot_target", f"hot_target-{i}", members, ev)

    def poll_stuffing(self) -> None:
        for i, n in enumerate(self.sizes()):
            members = self.accounts(n)
            phones = self.devices(max(1, n // 25))
            ips = self.proxy_ips(int(self.r.integers(1, 4)))
            ev = self.jobs(
                members,
                n_jobs=int(self.r.integers(1, 5)),
                window_us=int(self.r.uniform(1, 4) * HOUR_US),
                participation=1.0,
                device=phones[np.arange(n) % len(phones)],
                ip=ips[self.r.integers(0, len(ips), n)],
            )
            self.add("poll_stuffing", f"poll_stuffing-{i}", members, ev)

    def build(self) -> Events:
        for family in FAMILIES:
            getattr(self, family)()
        events = Events.concat(self.parts)
        unchosen = events.video == UNCHOSEN
        events.video[unchosen] = self.g.videos.sample(self.r, events.ts[unchosen])
        # one like per (user, video): the first stays, and none where the owner liked it already
        order = np.lexsort((events.ts, events.video, events.user))
        pair = events.user[order].astype(np.int64) * len(self.g.video_ids) + events.video[order]
        keep = np.concatenate([[True], pair[1:] != pair[:-1]])
        # only a hijacked account can like what its owner liked
        hijacked = np.array(
            [u for u, t in self.truth.items() if t.family == "hijacked"], dtype=np.int64
        )
        owners = np.isin(self.g.events.user, hijacked, kind="table")
        genuine_pairs = (
            self.g.events.user[owners].astype(np.int64) * len(self.g.video_ids)
            + self.g.events.video[owners]
        )
        keep &= ~np.isin(pair, genuine_pairs)
        return events.take(np.sort(order[keep]))
