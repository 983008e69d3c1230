"""Sizes and durations of a run, and where the server listens (no Django imports here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.cpu import CpuGroups


@dataclass
class Plan:
    """Sizes and durations of a run (full by default, smaller with --quick)."""

    quick: bool
    connections: int = 16
    warmup_s: float = 2.0
    rounds: int = 8
    round_s: float = 2.0
    open_loop_s: float = 10.0
    open_loop_pool: int = 64
    lag_s: float = 15.0
    lag_rate_fraction: float = 0.5
    lag_poll_interval_s: float = 0.1
    lag_tail_s: float = 10.0
    finalize_votes: int = 1_000_000
    finalize_runs: int = 3
    finalize_timeout_s: float = 300.0
    write_users: int = 200
    stickers: int = 5
    # Reward fan-out: winning voters of one ending sticker (the grants one pass writes).
    fanout_winners: int = 100_000
    fanout_runs: int = 3
    fanout_timeout_s: float = 180.0
    # Grant lag: likes by distinct users at a fixed open-loop rate.
    grant_lag_rate: float = 60.0
    grant_lag_s: float = 15.0
    grant_lag_poll_interval_s: float = 0.1
    grant_lag_tail_s: float = 20.0
    grant_lag_videos: int = 10

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            warmup_s=1.0,
            rounds=2,
            round_s=1.5,
            open_loop_s=4.0,
            lag_s=5.0,
            lag_tail_s=5.0,
            finalize_votes=100_000,
            finalize_runs=2,
            fanout_winners=10_000,
            grant_lag_s=5.0,
        )

    @property
    def alternation(self) -> str:
        """How a comparison runs, as the report says it."""
        return (
            f"{self.connections} connections, {self.rounds} x {self.round_s:.0f}s each, alternating"
        )


@dataclass
class Server:
    host: str
    port: int
    cpu: CpuGroups | None = None
    # Waits (bounded) until the workers have drained what the previous load queued.
    settle: Callable[[], object] = lambda: None

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"
