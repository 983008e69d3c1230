"""The pieces every part of the generator shares: time, the event arrays, the ground truth,
identifier tables and the videos' popularity over time (see bench/integrity/generate.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

GENUINE = "genuine"
FAMILIES = (
    "lockstep",
    "camouflage",
    "hijacked",
    "jittered",
    "slow_drip",
    "one_shot",
    "hot_target",
    "poll_stuffing",
)
# Group-size bands the benchmark reports recall in; every family gets groups in each band.
BANDS = ((10, 29), (30, 99), (100, 300))

START_US = int(np.datetime64("2026-10-01T00:00:00", "us").astype(np.int64))  # a Thursday
MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
START_WEEKDAY = 3  # Monday 0

HEADER = b"user_id,video_id,creator_id,ts,device_id,ip\n"
TRUTH_HEADER = ["user_id", "family", "group", "group_size", "span_start", "span_end"]

# People's likes by local hour: quiet nights, a lunch bump, busy evenings.
DIURNAL = np.array(
    [
        1.6, 0.9, 0.5, 0.3, 0.25, 0.3, 0.6, 1.2, 1.8, 2.0, 2.1, 2.3,
        2.8, 2.6, 2.3, 2.3, 2.6, 3.0, 3.6, 4.3, 4.8, 4.9, 4.2, 2.8,
    ]
)  # fmt: skip
DIURNAL = DIURNAL / DIURNAL.sum()
# Local time zones of the audience (hours from UTC) and their shares.
TIME_ZONES = np.array([0.0, 1.0, 2.0, -5.0, -8.0, 5.5, 8.0, -3.0])
TIME_ZONE_SHARES = np.array([0.22, 0.24, 0.1, 0.16, 0.08, 0.07, 0.08, 0.05])


@dataclass
class Events:
    """One like per row. `user`, `video`, `device`, `ip` index the World's tables."""

    user: np.ndarray  # int32
    video: np.ndarray  # int32
    ts: np.ndarray  # int64, microseconds since the Unix epoch
    device: np.ndarray  # int32, 0 = no device id (the empty string)
    ip: np.ndarray  # int32
    attack: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> Events:
        return Events(
            self.user[index],
            self.video[index],
            self.ts[index],
            self.device[index],
            self.ip[index],
            self.attack[index],
        )

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in Events.FIELDS)  # type: ignore[arg-type]
        )

    FIELDS = ("user", "video", "ts", "device", "ip", "attack")


def events_of(user: Any, video: Any, ts: Any, device: Any, ip: Any, attack: bool) -> Events:
    n = len(ts)
    return Events(
        np.asarray(user, dtype=np.int32),
        np.asarray(video, dtype=np.int32),
        np.asarray(ts, dtype=np.int64),
        np.broadcast_to(np.asarray(device, dtype=np.int32), (n,)).copy(),
        np.broadcast_to(np.asarray(ip, dtype=np.int32), (n,)).copy(),
        np.full(n, attack),
    )


@dataclass
class Truth:
    family: str
    group: str = ""
    group_size: int = 0
    span_start_us: int | None = None
    span_end_us: int | None = None


@dataclass
class World:
    seed: int
    days: int
    clean: bool
    user_ids: np.ndarray  # S12: genuine accounts first, then the attackers' fresh ones
    video_ids: np.ndarray  # S12
    video_creator: np.ndarray  # int32 user index
    device_ids: np.ndarray  # S16, [0] = b"" (no device id)
    ips: np.ndarray  # S39
    events: Events  # in time order
    truth: dict[int, Truth]  # user index -> truth, attack accounts only
    counts: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Tables of opaque identifiers
# ---------------------------------------------------------------------------------------------
def hex_ids(
    rng: np.random.Generator, n: int, width: int, taken: set[bytes] | None = None
) -> np.ndarray:
    """n distinct random lowercase hex strings of `width` characters (none in `taken`)."""
    out: list[bytes] = []
    taken = taken or set()
    seen: set[bytes] = set()
    while len(out) < n:
        bits = min(4 * width, 63)
        draw = rng.integers(0, 1 << bits, size=(n - len(out)) * 2, dtype=np.int64)
        for value in np.unique(draw).tolist():
            text = f"{value:0{width}x}".encode()
            if text not in seen and text not in taken:
                seen.add(text)
                out.append(text)
                if len(out) == n:
                    break
    array = np.array(out, dtype=f"S{width}")
    rng.shuffle(array)
    return array


def ipv4_strings(values: np.ndarray) -> list[bytes]:
    v = values.astype(np.int64)
    return [
        f"{a}.{b}.{c}.{d}".encode()
        for a, b, c, d in zip(
            (v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255, strict=True
        )
    ]


class IpTable:
    """Distinct address strings; `add` returns their indexes."""

    def __init__(self) -> None:
        self.strings: list[bytes] = []
        self.index: dict[bytes, int] = {}

    def add(self, strings: list[bytes]) -> np.ndarray:
        out = np.empty(len(strings), dtype=np.int32)
        for i, s in enumerate(strings):
            j = self.index.get(s)
            if j is None:
                j = self.index[s] = len(self.strings)
                self.strings.append(s)
            out[i] = j
        return out

    def add_v4(self, values: np.ndarray) -> np.ndarray:
        return self.add(ipv4_strings(values))


def public_v4(
    rng: np.random.Generator, n: int, first_octets: np.ndarray | None = None
) -> np.ndarray:
    """Random public-looking IPv4 addresses (as integers), optionally within given /8s."""
    if first_octets is None:
        first_octets = np.array(
            [2, 5, 24, 31, 37, 46, 49, 62, 66, 71, 73, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86,
             87, 88, 89, 90, 91, 92, 93, 94, 95, 98, 99, 108, 109, 151, 176, 178, 185, 188,
             190, 193, 194, 195, 197, 201, 212, 213, 217]
        )  # fmt: skip
    a = rng.choice(first_octets, n)
    rest = rng.integers(0, 2**24, n)
    return (a.astype(np.int64) << 24) | rest


# Hosting providers' blocks: VPN exits (genuine) and datacenter proxies (attacks) share them.
HOSTING_BLOCKS = np.array(
    [(45 << 24) | (76 << 16), (104 << 24) | (248 << 16), (139 << 24) | (59 << 16),
     (159 << 24) | (89 << 16), (167 << 24) | (99 << 16), (206 << 24) | (189 << 16)]
)  # fmt: skip


def hosting_v4(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(HOSTING_BLOCKS, n) | rng.integers(0, 2**16, n)


# ---------------------------------------------------------------------------------------------
# Videos and their popularity over time
# ---------------------------------------------------------------------------------------------
class Videos:
    """Videos in publishing order with their popularity; liked from 6 minutes after publishing
    until LIKED_FOR (older ones are left out: their decayed weight is below 1%)."""

    LIKED_FOR_US = 10 * DAY_US

    def __init__(
        self,
        creator: np.ndarray,
        published: np.ndarray,
        popularity: np.ndarray,
        half_life_h: np.ndarray,
    ) -> None:
        self.creator = creator  # creator index (into creators), by video index
        self.published = published  # µs from the start (may be before it), by video index
        self.by_published = np.argsort(published, kind="stable")  # video indexes
        self.published_sorted = published[self.by_published]
        self.popularity_sorted = popularity[self.by_published]
        self.half_life_sorted = half_life_h[self.by_published]

    def weights_at(self, at_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(video indexes, how likely each is to be liked at this moment): popularity decaying
        with age, `(1 + age / half-life)^-1.6`."""
        lo = int(np.searchsorted(self.published_sorted, at_us - self.LIKED_FOR_US))
        hi = int(np.searchsorted(self.published_sorted, at_us - 6 * MINUTE_US))
        age_h = (at_us - self.published_sorted[lo:hi]) / HOUR_US
        weights = self.popularity_sorted[lo:hi] * np.power(
            1.0 + age_h / self.half_life_sorted[lo:hi], -1.6
        )
        return self.by_published[lo:hi], weights

    def sample(self, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
        """A video for each time, by popularity then (weights taken on the hour)."""
        out = np.empty(len(times), dtype=np.int32)
        hours = times // HOUR_US
        order = np.argsort(hours, kind="stable")
        sorted_hours = hours[order]
        bounds = np.flatnonzero(np.diff(sorted_hours)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(order)]])
        uniforms = rng.random(len(times))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            if s == e:
                continue
            videos, weights = self.weights_at(int(sorted_hours[s]) * HOUR_US)
            cumulative = np.cumsum(weights)
            picks = np.searchsorted(cumulative, uniforms[s:e] * cumulative[-1], side="right")
            out[order[s:e]] = videos[np.minimum(picks, len(cumulative) - 1)]
        return out

    def hottest(self, at_us: int, k: int) -> np.ndarray:
        videos, weights = self.weights_at(at_us)
        return videos[np.argpartition(weights, -k)[-k:]]

    def recent(self, rng: np.random.Generator, at_us: int, within_us: int) -> int:
        """A video published in the `within_us` before `at_us` (at least 10 minutes before)."""
        lo = int(np.searchsorted(self.published_sorted, at_us - within_us))
        hi = int(np.searchsorted(self.published_sorted, at_us - 10 * MINUTE_US))
        if hi <= lo:
            lo = max(0, hi - 50)
        return int(self.by_published[rng.integers(lo, hi)])


def local_hour_weekday(ts: np.ndarray, tz_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    local = ts + tz_us
    return (local // HOUR_US) % 24, (local // DAY_US + START_WEEKDAY) % 7


def times_by_rhythm(rng: np.random.Generator, n: int, days: int, tz_us: np.ndarray) -> np.ndarray:
    """n moments following the daily rhythm in each one's local time (weekends a bit busier)."""
    day_weights = np.array(
        [1.3 if (d + START_WEEKDAY) % 7 >= 5 else 1.0 for d in range(days)], dtype=float
    )
    day = rng.choice(days, n, p=day_weights / day_weights.sum())
    hour = rng.choice(24, n, p=DIURNAL)
    t = day * DAY_US + hour * HOUR_US + (rng.random(n) * HOUR_US).astype(np.int64) - tz_us
    return np.mod(t, days * DAY_US)
