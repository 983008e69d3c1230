"""How the phases measure: loads metered by CPU, alternating comparisons, the figures of a load.

Shared by every phase module; no Django imports here.

- `BARE_PATH`, `OPEN_PATH`: the baselines; `auth_headers`: a bench user's request headers;
- `closed_load` / `open_load`: one run of `bench.httpload`'s drivers against the server, with
  the CPU each component used meanwhile (`metered`); an open load can run a poller beside it;
- `alternating`: two sides warmed up, then alternated in short rounds (ABBA), so drift in the
  machine hits both; its `Alternation` gives the throughput ratio and the per-round spread;
- the figures of a load: `statuses`, `cpu_per_request`, `server_cpu_ms`, `cpu_ratio`,
  `ratio`, `spread`, `percentile_or_none`, `rate_sustained`;
- `PollSchedule` and `LagLog`: the lag phases' pollers (scheduled ticks, stop when caught up);
- `seconds` and `median_after_warmup`: timing of one call, and the median of warm runs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.cpu import cpu_between, cpu_sample
from bench.httpload import (
    Connection,
    HTTPError,
    LoadStats,
    RequestFactory,
    ResponseHook,
    closed_loop,
    open_loop,
    percentile,
)
from bench.plan import Plan, Server
from bench.stack import say

if TYPE_CHECKING:
    from bench.fixtures import BenchUser

# The baselines: the same middleware, authentication and renderer as the API, nothing else
# (core/api/bench.py); the open one without authentication, permission or throttle.
BARE_PATH = "/api/v1/_bench/bare"
OPEN_PATH = "/api/v1/_bench/open"


def auth_headers(user: BenchUser) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {user.token}",
        "X-Device-Id": f"bench-device-{user.id}",
        "Accept": "application/json",
    }


# --- loads ---------------------------------------------------------------------------------------
def metered(server: Server, run: Callable[[], LoadStats]) -> LoadStats:
    """Run a load and attach the CPU each component used meanwhile."""
    before = cpu_sample(server.cpu) if server.cpu else None
    stats = run()
    if server.cpu and before is not None:
        stats.cpu = cpu_between(before, cpu_sample(server.cpu))
    return stats


def closed_load(
    server: Server,
    plan: Plan,
    label: str,
    factory: RequestFactory,
    seconds: float,
    hook: ResponseHook | None = None,
) -> LoadStats:
    """`plan.connections` clients back to back for `seconds` (throughput at saturation)."""

    def run() -> LoadStats:
        return asyncio.run(
            closed_loop(
                label=label,
                host=server.host,
                port=server.port,
                factory=factory,
                connections=plan.connections,
                duration_s=seconds,
                max_requests=int(seconds * 20_000),
                hook=hook,
            )
        )

    return metered(server, run)


def open_load(
    server: Server,
    plan: Plan,
    label: str,
    factory: RequestFactory,
    rate: float,
    seconds: float,
    *,
    hook: ResponseHook | None = None,
    max_requests: int | None = None,
    beside: Callable[[], Coroutine[Any, Any, object]] | None = None,
    on_done: Callable[[], object] | None = None,
) -> LoadStats:
    """Requests scheduled at `rate` for `seconds` (latency from the schedule), on a pool of
    `plan.open_loop_pool` connections. `beside` (a poller) runs alongside in the same event loop;
    `on_done` is called as soon as the load is over, so the poller can start its tail."""

    async def load() -> LoadStats:
        try:
            return await open_loop(
                label=label,
                host=server.host,
                port=server.port,
                factory=factory,
                rate=rate,
                duration_s=seconds,
                pool_size=plan.open_loop_pool,
                hook=hook,
                max_requests=max_requests,
            )
        finally:
            if on_done is not None:
                on_done()

    async def with_beside() -> LoadStats:
        if beside is None:
            return await load()
        stats: LoadStats
        stats, _ = await asyncio.gather(load(), beside())
        return stats

    return metered(server, lambda: asyncio.run(with_beside()))


# --- alternating comparisons -------------------------------------------------------------------
Side = tuple[str, RequestFactory, ResponseHook | None]


@dataclass
class Alternation:
    """Both sides of an alternating comparison: totals over all rounds, and each round's rps."""

    a: LoadStats
    b: LoadStats
    rounds: list[tuple[float, float]]  # (a rps, b rps) per round

    @property
    def ratio(self) -> float | None:
        """b's throughput over a's, over all rounds."""
        return ratio(self.b.rps, self.a.rps)

    def round_ratios(self) -> list[float]:
        """b / a of each round: the spread shows how much the machine moved meanwhile."""
        return [b / a for a, b in self.rounds if a > 0]

    def round_spread(self) -> dict[str, float] | None:
        return spread(self.round_ratios())

    def say_totals(self) -> None:
        say_load(self.a, prefix="  total ")
        say_load(self.b, prefix="  total ")


def alternating(server: Server, plan: Plan, pair: tuple[Side, Side]) -> Alternation:
    """Warm both up, then alternate them in short rounds so drift in the machine hits both."""
    side_a, side_b = pair
    for label, factory, hook in pair:
        closed_load(server, plan, f"warm-up {label}", factory, plan.warmup_s, hook)
    totals = {side_a[0]: LoadStats(side_a[0]), side_b[0]: LoadStats(side_b[0])}
    rounds: list[tuple[float, float]] = []
    for round_no in range(plan.rounds):
        # ABBA order: neither side always runs right after the other.
        order = (side_a, side_b) if round_no % 2 == 0 else (side_b, side_a)
        rps: dict[str, float] = {}
        for label, factory, hook in order:
            stats = closed_load(server, plan, label, factory, plan.round_s, hook)
            busy = ""
            if stats.cpu is not None and stats.cpu.machine_total_s:
                share = stats.cpu.machine_busy_s / stats.cpu.machine_total_s
                busy = f", machine {100 * share:.0f}% busy"
            say(f"  round {round_no + 1}: {stats.summary()}{busy}")
            totals[label].merge(stats)
            rps[label] = stats.rps
        rounds.append((rps[side_a[0]], rps[side_b[0]]))
    return Alternation(totals[side_a[0]], totals[side_b[0]], rounds)


# --- the figures of a load ---------------------------------------------------------------------
def say_load(stats: LoadStats, *, prefix: str = "  ", note: str = "") -> None:
    """The load's summary line, then (when it was metered) its CPU per request."""
    say(f"{prefix}{stats.summary()}")
    if stats.cpu is not None:
        say(f"    {stats.cpu.describe(stats.total)}{note}")


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    return a / b if a is not None and b else None


def spread(ratios: list[float]) -> dict[str, float] | None:
    if not ratios:
        return None
    return {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)}


def percentile_or_none(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, or None (null in the JSON) when there are no values."""
    return percentile(values, q) if values else None


def statuses(stats: LoadStats) -> dict[str, int]:
    found = {str(status): count for status, count in sorted(stats.statuses.items())}
    found.update({f"error:{kind}": count for kind, count in stats.errors.items()})
    return found


def cpu_per_request(stats: LoadStats) -> dict[str, float] | None:
    """CPU milliseconds per request by component, and the share of the machine used by others."""
    if stats.cpu is None:
        return None
    figures = stats.cpu.per_request_ms(stats.total)
    figures["other_processes_share"] = stats.cpu.other_share()
    return figures


# Not the server's own work: the load generator, sums, and the server-wide short-lived backends
# (they include other clients' connections on a shared machine; reported, not attributed).
NOT_SERVER = ("loadgen", "total", "other_processes_share", "postgres_short_lived")


def server_cpu_ms(stats: LoadStats) -> float | None:
    """CPU ms per request spent by the server's own processes (see NOT_SERVER)."""
    per = cpu_per_request(stats)
    if not per:
        return None
    return sum(value for name, value in per.items() if name not in NOT_SERVER)


def cpu_ratio(full: LoadStats, bare: LoadStats) -> float | None:
    """bare CPU cost / full CPU cost per request: the throughput ratio a CPU-bound server would
    reach if nothing else ran on the machine (a cross-check that other load does not move)."""
    full_ms, bare_ms = server_cpu_ms(full), server_cpu_ms(bare)
    return bare_ms / full_ms if full_ms and bare_ms else None


def rate_sustained(stats: LoadStats, rate: float, *, max_p50_ms: float | None = 500) -> bool:
    """Did the server keep up with an offered open-loop rate: 90 % of it answered, no errors,
    and (unless max_p50_ms is None) a median latency below max_p50_ms?"""
    kept_up = stats.rps >= 0.9 * rate and not stats.errors
    return kept_up and (max_p50_ms is None or stats.p(50) < max_p50_ms)


# --- lag pollers -------------------------------------------------------------------------------
@dataclass
class LagLog:
    """What a lag phase saw: when each write's 2xx arrived, and each read of the count."""

    commits: list[float] = field(default_factory=list)  # when each 2xx answer was read
    polls: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, read, count)
    poll_errors: int = 0
    load_done: bool = False

    def caught_up(self) -> bool:
        """The last read shows every committed write."""
        return bool(self.polls) and self.polls[-1][2] >= len(self.commits)

    async def poll(self, conn: Connection, raw: bytes, count: Callable[[Any], int]) -> None:
        """One read of the count: `raw` sent on `conn`, `count` taken from its 200 answer's JSON
        document; an error or another status counts as a failed poll."""
        sent = time.perf_counter()
        try:
            status, body, _ = await conn.request(raw)
        except HTTPError:
            self.poll_errors += 1
            return
        if status == 200:
            self.polls.append((sent, time.perf_counter(), int(count(json.loads(body)))))
        else:
            self.poll_errors += 1


@dataclass
class PollSchedule:
    """A poller's ticks: every `interval` from the start (scheduled, so a slow read does not
    thin out the samples), until `limit_s` at the latest; once the load is done, until the reads
    caught up or for `tail_s` more."""

    interval: float
    limit_s: float
    tail_s: float
    started: float = field(default_factory=time.perf_counter)
    load_done_at: float | None = None

    def ticks(self) -> Iterator[float]:
        for tick_no in range(int(self.limit_s / self.interval) + 1):
            yield self.started + tick_no * self.interval

    @staticmethod
    def wait(tick: float) -> float:
        """Seconds to sleep until the tick."""
        return max(0.0, tick - time.perf_counter())

    def over(self, tick: float, load_done: bool, caught_up: Callable[[], bool]) -> bool:
        """Checked at each tick once its sleep is over: stop polling?"""
        if time.perf_counter() >= self.started + self.limit_s:
            return True
        if load_done:
            self.load_done_at = self.load_done_at or tick
            return caught_up() or tick - self.load_done_at > self.tail_s
        return False


# --- timing ------------------------------------------------------------------------------------
def seconds(call: Callable[[], object]) -> float:
    """Wall seconds one call took."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def median_after_warmup(run: Callable[[], float], runs: int = 3) -> tuple[float, list[float]]:
    """One untimed run (the same warm buffer cache for both sides of a comparison), then the
    median of `runs` runs; `run` returns the seconds it measured. Returns (median, each run)."""
    run()
    times = [run() for _ in range(runs)]
    return statistics.median(times), times
