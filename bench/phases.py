"""The bench's phases, one table: each phase's name, the function that measures it, what it
needs from the run, and its rows in the report (targets with their thresholds, and figures
reported without one).

`python -m bench` runs the selected phases in the order of the table (`--only` picks by name)
and prints their rows in that order; docs/benchmarks.md describes each phase's method. The
functions live in the `*_phases` modules, which import Django's models: the table names them by
dotted path, and the runner imports them after django.setup(). No Django imports here.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from bench.plan import Plan, Server
from bench.stack import Processes

if TYPE_CHECKING:
    from bench.fixtures import BenchSticker, BenchUser
    from engagement.models import User


@dataclass(frozen=True)
class Target:
    """A figure with a threshold: the report prints PASS or FAIL against it."""

    key: str  # the figure's JSON key
    title: str
    compared: str  # what the figure was compared against / how it is formed (format_map text)
    bound: float
    at_most: bool  # True: figure <= bound passes; False: figure >= bound passes
    unit: str

    def verdict(self, value: Any) -> str:
        if not isinstance(value, int | float) or math.isnan(value):
            return "n/a"
        ok = value <= self.bound if self.at_most else value >= self.bound
        return "PASS" if ok else "FAIL"

    def bound_text(self) -> str:
        sign = "<=" if self.at_most else ">="
        return f"{sign} {self.bound:g}{self.unit}"


@dataclass(frozen=True)
class Info:
    """A figure the report prints without a target."""

    key: str
    title: str
    compared: str
    unit: str


@dataclass
class PhaseInputs:
    """What the run has made before the phases: a phase is called with the fields its row
    `needs`, by name."""

    server: Server  # gunicorn and the live Celery workers, with their CPU groups
    plan: Plan
    processes: Processes  # to start (and stop) a phase's own worker
    database_url: str  # the scratch database
    users: list[BenchUser]  # the write users, with device tokens
    stickers: list[BenchSticker]  # the open poll stickers they vote on
    creator_video: tuple[User, int]  # their creator and video
    results: dict[str, Any]  # the figures of the phases run so far


INPUTS = frozenset(f.name for f in fields(PhaseInputs))


@dataclass(frozen=True)
class Phase:
    name: str  # for --only, the durations and the report
    function: str  # dotted path of the function that measures it; returns its figures
    needs: tuple[str, ...]  # the PhaseInputs it is called with (keyword arguments)
    targets: tuple[Target, ...] = ()
    info: tuple[Info, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.needs) - INPUTS
        if unknown:
            raise ValueError(f"phase {self.name} needs {sorted(unknown)}, not in PhaseInputs")

    def measure(self) -> Callable[..., dict[str, Any]]:
        """The phase's function (importing its module: only after django.setup())."""
        module, _, name = self.function.rpartition(".")
        function: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module), name)
        return function

    def run(self, inputs: PhaseInputs) -> dict[str, Any]:
        """Measure the phase: its function called with what it needs; returns its figures."""
        return self.measure()(**{name: getattr(inputs, name) for name in self.needs})


PHASES = (
    Phase(
        "writes",
        "bench.poll_phases.phase_writes",
        needs=("server", "plan", "users", "stickers"),
        targets=(
            Target(
                "vote_write_ratio",
                "Vote writes, throughput",
                "POST /stickers/{{id}}/votes {vote_write_rps:.0f} req/s vs bare POST "
                "{bare_write_rps:.0f} req/s (same server, same tokens; p99 {vote_p99_ms:.0f} vs "
                "{bare_write_p99_ms:.0f} ms under saturation); per round "
                "{vote_write_round_ratios}\n"
                "       server CPU per request {vote_server_cpu_ms:.2f} vs "
                "{bare_write_server_cpu_ms:.2f} ms -> CPU-cost ratio {vote_write_cpu_ratio:.2f}x "
                "(a cross-check that other load on the machine does not move)",
                bound=0.5,
                at_most=False,
                unit="x",
            ),
            Target(
                "vote_p99_ms_at_half_rate",
                "Vote writes, p99 at half rate",
                "open loop at {half_rate_rps:.0f} req/s (half the vote throughput): p50 "
                "{vote_p50_ms_at_half_rate:.1f} ms; bare POST at the same rate: p50 "
                "{bare_write_p50_ms_at_half_rate:.1f} / "
                "p99 {bare_write_p99_ms_at_half_rate:.1f} ms",
                bound=100.0,
                at_most=True,
                unit=" ms",
            ),
            Target(
                "vote_vs_tutorial_ratio",
                "Full vote vs the tutorial's vote",
                "POST /stickers/{{id}}/votes {full_vote_rps:.0f} req/s vs the Django tutorial's "
                "vote {tutorial_vote_rps:.0f} req/s (one row's F('votes') + 1, no authentication, "
                "no dedupe); per round {vote_vs_tutorial_round_ratios}\n"
                "       server CPU per request {full_vote_server_cpu_ms:.2f} vs "
                "{tutorial_vote_server_cpu_ms:.2f} ms",
                bound=1.0,
                at_most=False,
                unit="x",
            ),
        ),
    ),
    Phase(
        "reads",
        "bench.poll_phases.phase_reads",
        needs=("server", "plan", "users", "stickers"),
        targets=(
            Target(
                "results_read_ratio",
                "Results reads, throughput",
                "GET /stickers/{{id}}/results {results_read_rps:.0f} req/s vs bare GET "
                "{bare_read_rps:.0f} req/s (p99 {results_p99_ms:.0f} vs {bare_read_p99_ms:.0f} "
                "ms); per round {results_read_round_ratios}\n"
                "       server CPU per request {results_server_cpu_ms:.2f} vs "
                "{bare_read_server_cpu_ms:.2f} ms -> CPU-cost ratio {results_read_cpu_ratio:.2f}x",
                bound=0.8,
                at_most=False,
                unit="x",
            ),
            Target(
                "auth_overhead_ratio",
                "Authentication's cost, throughput",
                "GET /_bench/bare with a device token {authenticated_get_rps:.0f} req/s vs the "
                "same GET without authentication {open_get_rps:.0f} req/s; per round "
                "{auth_overhead_round_ratios}\n"
                "       server CPU per request {authenticated_get_server_cpu_ms:.2f} vs "
                "{open_get_server_cpu_ms:.2f} ms",
                bound=0.6,
                at_most=False,
                unit="x",
            ),
        ),
    ),
    Phase(
        "lag",
        "bench.poll_phases.phase_lag",
        # The vote capacity from `writes` when it ran (else a short probe, hence users, stickers).
        needs=("server", "plan", "users", "stickers", "creator_video", "results"),
        targets=(
            Target(
                "live_lag_s",
                "Live results lag (max)",
                "results polled every 100 ms vs votes committed (2xx) before each poll was sent, "
                "at {live_lag_vote_rate:.0f} votes/s ({live_lag_votes_committed} votes, p50 "
                "{live_lag_vote_p50_ms:.0f} ms); p95 {live_lag_p95_s:.3f} s; counting each read's "
                "own time (p99 {live_lag_poll_p99_ms:.0f} ms): max {live_lag_upper_s:.3f} s",
                bound=2.0,
                at_most=True,
                unit=" s",
            ),
        ),
    ),
    Phase(
        "finalize",
        "bench.poll_phases.phase_finalize",
        needs=("plan", "processes", "creator_video", "database_url"),
        targets=(
            Target(
                "finalize_1m_ratio",
                "Finalize, time",
                "finalize_sticker on a solo worker {finalize_1m_s:.2f} s (send -> state final) vs "
                "plain GROUP BY {group_by_1m_s:.3f} s over the same {finalize_votes:,} votes "
                "(without parallel workers {group_by_1m_serial_s:.3f} s: "
                "{finalize_1m_ratio_vs_serial:.2f}x)",
                bound=5.0,
                at_most=True,
                unit="x",
            ),
            Target(
                "finalize_worker_peak_mb",
                "Finalize, worker peak memory",
                "VmHWM of the solo worker process (idle after start: "
                "{finalize_worker_idle_mb:.0f} MB)",
                bound=300.0,
                at_most=True,
                unit=" MB",
            ),
        ),
    ),
    Phase(
        "fanout",
        "bench.reward_phases.phase_fanout",
        needs=("server", "plan", "processes", "creator_video", "database_url"),
        targets=(
            Target(
                "reward_fanout_100k_ratio",
                "Reward fan-out, time",
                "process_reward_events on a solo worker {reward_fanout_100k_s:.2f} s (send -> all "
                "{reward_fanout_rows:,} badge grants visible; the pass also writes their feed "
                "entries and the 'your vote chose the ending' entries) vs plain INSERT … SELECT of "
                "the same grant rows {plain_insert_select_100k_s:.3f} s; per round "
                "{reward_fanout_round_ratios}\n"
                "       rule_apply alone (in-process) {reward_fanout_rule_apply_s:.2f} s = "
                "{reward_fanout_rule_apply_ratio:.2f}x; perk rule (+ entitlements): worker "
                "{reward_fanout_perk_100k_s:.2f} s = {reward_fanout_perk_100k_ratio:.2f}x, "
                "rule_apply alone {reward_fanout_perk_rule_apply_s:.2f} s = "
                "{reward_fanout_perk_rule_apply_ratio:.2f}x (plain "
                "{plain_insert_select_perk_100k_s:.3f} s)\n"
                "       one grant per winning counted voter in every run: {reward_fanout_exact}; "
                "worker peak RSS {reward_fanout_worker_peak_mb:.0f} MB (idle "
                "{reward_fanout_worker_idle_mb:.0f} MB)",
                bound=3.0,
                at_most=True,
                unit="x",
            ),
        ),
    ),
    Phase(
        "grant_lag",
        "bench.reward_phases.phase_grant_lag",
        needs=("server", "plan", "creator_video", "database_url"),
        info=(
            Info(
                "grant_lag_s",
                "Grant lag (max)",
                "grant first seen (polled every 100 ms) - the like's 2xx, for {grant_lag_likes} "
                "likes PUT /videos/{{id}}/like by distinct users at {grant_lag_like_rate:.0f}/s "
                "(open loop, p50 {grant_lag_like_p50_ms:.0f} ms, sustained: "
                "{grant_lag_rate_sustained}); p95 {grant_lag_p95_s:.3f} s, p50 "
                "{grant_lag_p50_s:.3f} s; {grant_lag_consumer_passes} consumer passes, "
                "{grant_lag_missing} likes without a grant\n"
                "       includes the wake-up debounce (WAKE_DEBOUNCE_SECONDS = "
                "{grant_lag_wake_debounce_s:g} s, the default); information, no target",
                unit=" s",
            ),
        ),
    ),
    Phase(
        "trending",
        "bench.discovery_phases.phase_trending",
        needs=("plan",),
        targets=(
            # The planted trends score 9-19 and the background's noise about 3 (a z-score), so a
            # detector that works finds all of them; 0.9 leaves room for one unlucky draw each way.
            Target(
                "trending_precision",
                "Trending, precision of the top 20",
                "planted real trends among the top 20 of GET hashtags/trending (24 h) over "
                "{trending_interactions:,} generated interactions on {trending_tags} tags "
                "({trending_positives} planted trends; decoys: 1 -> 5, a creator spamming a tag, "
                "uncounted bot likes, a falling tag)",
                bound=0.9,
                at_most=False,
                unit="",
            ),
            Target(
                "trending_recall",
                "Trending, recall of the top 20",
                "planted real trends found in the top 20 / planted trends",
                bound=0.9,
                at_most=False,
                unit="",
            ),
        ),
    ),
    Phase(
        "analytics",
        "bench.analytics_phases.phase_analytics",
        needs=("server", "plan", "database_url"),
        targets=(
            Target(
                "analytics_read_ratio",
                "Analytics reads, throughput",
                "the lower of GET creators/me/analytics?days=90 "
                "{analytics_large_creator_read_rps:.0f} req/s vs bare GET "
                "{analytics_large_creator_bare_rps:.0f} (= "
                "{analytics_large_creator_read_ratio:.2f}x, p99 "
                "{analytics_large_creator_p99_ms:.0f} ms) and GET videos/{{id}}/analytics?days=90 "
                "{analytics_large_video_read_rps:.0f} vs {analytics_large_video_bare_rps:.0f} "
                "req/s (= {analytics_large_video_read_ratio:.2f}x), big creator (a fifth of "
                "{analytics_interactions:,} interactions)\n"
                "       server CPU per request: creator "
                "{analytics_large_creator_server_cpu_ms:.2f}, video "
                "{analytics_large_video_server_cpu_ms:.2f}, bare "
                "{analytics_large_creator_bare_server_cpu_ms:.2f} ms",
                bound=0.5,
                at_most=False,
                unit="x",
            ),
            Target(
                "analytics_p99_ms_at_half_rate",
                "Analytics reads, p99 at half rate",
                "the higher of: creator at {analytics_creator_half_rate_rps:.0f} req/s open loop "
                "(p50 {analytics_creator_p50_ms_at_half_rate:.1f}, p99 "
                "{analytics_creator_p99_ms_at_half_rate:.1f} ms), video at "
                "{analytics_video_half_rate_rps:.0f} req/s (p50 "
                "{analytics_video_p50_ms_at_half_rate:.1f}, p99 "
                "{analytics_video_p99_ms_at_half_rate:.1f} ms)",
                bound=25.0,
                at_most=True,
                unit=" ms",
            ),
            Target(
                "analytics_size_ratio_10m_vs_1m",
                "Analytics reads, large vs small",
                "the lower of the creator and video read ratios (each against the bare GET of its "
                "own rounds) at {analytics_large_size:,} / at {analytics_small_size:,} "
                "interactions (creator {analytics_large_creator_read_ratio:.2f}x vs "
                "{analytics_small_creator_read_ratio:.2f}x, video "
                "{analytics_large_video_read_ratio:.2f}x vs "
                "{analytics_small_video_read_ratio:.2f}x; plain throughputs creator "
                "{analytics_large_creator_read_rps:.0f} vs {analytics_small_creator_read_rps:.0f}, "
                "video {analytics_large_video_read_rps:.0f} vs "
                "{analytics_small_video_read_rps:.0f} req/s)",
                bound=0.8,
                at_most=False,
                unit="x",
            ),
            Target(
                "analytics_lag_p99_s",
                "Analytics commit-to-visible lag",
                "{analytics_lag_likes} likes PUT at {analytics_lag_rate:.0f}/s (sustained: "
                "{analytics_lag_rate_sustained}), video analytics polled every "
                "{analytics_lag_poll_interval_s:g} s: p50 {analytics_lag_p50_s:.2f} s, max "
                "{analytics_lag_max_s:.2f} s, {analytics_lag_missing} never seen",
                bound=60.0,
                at_most=True,
                unit=" s",
            ),
            Target(
                "hot_read_ratio",
                "Hot videos, throughput",
                "GET videos/hot {hot_read_rps:.0f} req/s vs bare GET {hot_bare_rps:.0f} req/s (p99 "
                "{hot_p99_ms:.0f} ms); server CPU per request {hot_server_cpu_ms:.2f} vs "
                "{hot_bare_server_cpu_ms:.2f} ms",
                bound=0.8,
                at_most=False,
                unit="x",
            ),
            Target(
                "rollup_rebuild_ratio",
                "Rollup rebuild, time",
                "analytics_rollups_rebuild() {analytics_large_rollup_rebuild_s:.1f} s vs plain "
                "GROUP BY (video, quarter hour) of the 5 tables "
                "{analytics_large_rollup_group_by_s:.2f} s (at {analytics_small_size:,}: "
                "{analytics_small_rollup_rebuild_s:.1f} vs {analytics_small_rollup_group_by_s:.2f} "
                "s); finished in time (else the ratio is the lower bound timeout / GROUP BY): "
                "{analytics_large_rollup_rebuild_finished}",
                bound=3.0,
                at_most=True,
                unit="x",
            ),
            Target(
                "heat_rebuild_ratio",
                "Heat rebuild, time",
                "heat_rebuild() {analytics_large_heat_rebuild_s:.2f} s vs plain GROUP BY likes per "
                "video {analytics_large_heat_group_by_s:.2f} s (at {analytics_small_size:,}: "
                "{analytics_small_heat_rebuild_s:.2f} vs {analytics_small_heat_group_by_s:.2f} s)",
                bound=3.0,
                at_most=True,
                unit="x",
            ),
        ),
    ),
)
NAMES = [phase.name for phase in PHASES]
