"""Where the CPU goes: per-process-group CPU time (psutil), sampled around a measurement; and
a worker's peak memory.

On a 2-core machine, throughput is CPU-bound, so "CPU milliseconds per request" by component
(web workers, PostgreSQL backends, Redis, the Celery workers, the load generator) explains a
ratio better than latency does. `other` is what the rest of the machine used meanwhile (other
people's tests, say): the noise of the run.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def process_cpu_s(pid: int) -> float:
    """user + system CPU of a live process, in seconds (0 when it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def reaped_children_cpu_s(pid: int) -> float:
    """CPU of the process's children that have exited and been reaped."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.children_user + times.children_system


def parent_of(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def children_of(parent: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(parent).children()]
    except psutil.Error:
        return []


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set size) of a live process, in MiB.

    Read from /proc: psutil reports the current RSS only, no peak (and the resource module's
    ru_maxrss covers this process or its reaped children, not a live worker).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmHWM for pid {pid}")


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over all CPUs (guest
    time is already counted in user; idle and iowait are not busy)."""
    times = psutil.cpu_times()
    total = sum(
        getattr(times, name, 0.0)
        for name in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    )
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


@dataclass
class CpuGroups:
    """How to find each component's processes at sampling time."""

    web_pid: int | None = None
    workers: dict[str, int] = field(default_factory=dict)  # group name -> Celery worker pid
    redis_pid: int | None = None
    postgres_pids: Callable[[], list[int]] = field(default=lambda: [])
    # PostgreSQL's postmaster: the CPU of backends that connected and exited between two
    # samples (Celery closes its connection after every task) is added to its reaped-children
    # time. It counts every short-lived backend of the server, ours and anybody else's.
    postmaster_pid: int | None = None

    def pids(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        if self.web_pid:
            groups["web"] = [self.web_pid, *children_of(self.web_pid)]
        try:
            groups["postgres"] = self.postgres_pids()
        except Exception:  # measuring must never break the run
            groups["postgres"] = []
        if self.redis_pid:
            groups["redis"] = [self.redis_pid]
        for name, worker in self.workers.items():
            groups[name] = [worker, *children_of(worker)]
        groups["loadgen"] = [os.getpid()]
        return groups


@dataclass
class CpuSample:
    per_pid: dict[str, dict[int, float]]
    busy: float
    total: float


def cpu_sample(groups: CpuGroups) -> CpuSample:
    pids = groups.pids()
    per_pid = {name: {pid: process_cpu_s(pid) for pid in found} for name, found in pids.items()}
    if groups.postmaster_pid is None and pids.get("postgres"):
        groups.postmaster_pid = parent_of(pids["postgres"][0])
    if groups.postmaster_pid:
        # Keyed by the postmaster's pid, so it is counted like a process seen at both ends;
        # listed right after the long-lived backends.
        reaped = {groups.postmaster_pid: reaped_children_cpu_s(groups.postmaster_pid)}
        ordered: dict[str, dict[int, float]] = {}
        for name, values in per_pid.items():
            ordered[name] = values
            if name == "postgres":
                ordered["postgres_short_lived"] = reaped
        per_pid = ordered
    busy, total = machine_cpu_s()
    return CpuSample(per_pid, busy, total)


@dataclass
class CpuUsage:
    """CPU seconds used per component between two samples, and by everything else."""

    seconds: dict[str, float] = field(default_factory=dict)
    machine_busy_s: float = 0.0
    machine_total_s: float = 0.0

    def add(self, other: CpuUsage) -> None:
        for name, value in other.seconds.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + value
        self.machine_busy_s += other.machine_busy_s
        self.machine_total_s += other.machine_total_s

    @property
    def other_s(self) -> float:
        return max(0.0, self.machine_busy_s - sum(self.seconds.values()))

    def per_request_ms(self, requests: int) -> dict[str, float]:
        if requests <= 0:
            return {}
        figures = {name: 1000.0 * value / requests for name, value in self.seconds.items()}
        # The server-wide short-lived backends are reported but not attributed (see CpuGroups).
        figures["total"] = sum(v for k, v in figures.items() if k != "postgres_short_lived")
        return figures

    def other_share(self) -> float:
        """Share of the machine's CPU capacity used by processes that are not ours."""
        return self.other_s / self.machine_total_s if self.machine_total_s else 0.0

    def describe(self, requests: int) -> str:
        per = self.per_request_ms(requests)
        labels = {"postgres_short_lived": "short-lived pg backends (server-wide, not in the total)"}
        parts = [
            f"{labels.get(name, name)} {value:.2f}"
            for name, value in per.items()
            if name != "total"
        ]
        return (
            f"CPU ms/request: {', '.join(parts)}; total {per.get('total', 0.0):.2f}; "
            f"other processes used {100 * self.other_share():.0f}% of the machine"
        )


def cpu_between(before: CpuSample, after: CpuSample) -> CpuUsage:
    usage = CpuUsage()
    for name, pids in after.per_pid.items():
        start = before.per_pid.get(name, {})
        # Only processes seen at both ends (a backend that came and went is not counted).
        usage.seconds[name] = sum(
            max(0.0, value - start[pid]) for pid, value in pids.items() if pid in start
        )
    usage.machine_busy_s = after.busy - before.busy
    usage.machine_total_s = after.total - before.total
    return usage


def inprocess_cpu_ms(
    cases: Mapping[str, Callable[[], object]], rounds: int, calls: int
) -> dict[str, float]:
    """Median CPU milliseconds per call of each case, over `rounds` interleaved rounds of
    `calls` calls each (one untimed call first): the in-process cross-checks
    (bench.overhead_inprocess, bench.hot_inprocess)."""
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            run()
            started = time.process_time()
            for _ in range(calls):
                run()
            cpu[name].append((time.process_time() - started) / calls * 1000)
    return {name: statistics.median(values) for name, values in cpu.items()}
