"""The readable report and the JSON results file."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    key: str
    title: str
    compared: str  # what the figure was compared against / how it is formed
    bound: float
    at_most: bool  # True: figure <= bound passes; False: figure >= bound passes
    unit: str
    phase: str

    def verdict(self, value: Any) -> str:
        if not isinstance(value, int | float) or math.isnan(value):
            return "n/a"
        ok = value <= self.bound if self.at_most else value >= self.bound
        return "PASS" if ok else "FAIL"

    def bound_text(self) -> str:
        sign = "<=" if self.at_most else ">="
        return f"{sign} {self.bound:g}{self.unit}"


TARGETS = [
    Target(
        "vote_write_ratio",
        "Vote writes, throughput",
        "POST /stickers/{{id}}/votes {vote_write_rps:.0f} req/s vs bare POST "
        "{bare_write_rps:.0f} req/s (same server, same tokens; p99 {vote_p99_ms:.0f} vs "
        "{bare_write_p99_ms:.0f} ms under saturation); per round {vote_write_round_ratios}\n"
        "       server CPU per request {vote_server_cpu_ms:.2f} vs "
        "{bare_write_server_cpu_ms:.2f} ms -> CPU-cost ratio {vote_write_cpu_ratio:.2f}x "
        "(a cross-check that other load on the machine does not move)",
        0.5,
        False,
        "x",
        "writes",
    ),
    Target(
        "vote_p99_ms_at_half_rate",
        "Vote writes, p99 at half rate",
        "open loop at {half_rate_rps:.0f} req/s (half the vote throughput): p50 "
        "{vote_p50_ms_at_half_rate:.1f} ms; bare POST at the same rate: p50 "
        "{bare_write_p50_ms_at_half_rate:.1f} / p99 {bare_write_p99_ms_at_half_rate:.1f} ms",
        100.0,
        True,
        " ms",
        "writes",
    ),
    Target(
        "results_read_ratio",
        "Results reads, throughput",
        "GET /stickers/{{id}}/results {results_read_rps:.0f} req/s vs bare GET "
        "{bare_read_rps:.0f} req/s (p99 {results_p99_ms:.0f} vs {bare_read_p99_ms:.0f} ms); "
        "per round {results_read_round_ratios}\n"
        "       server CPU per request {results_server_cpu_ms:.2f} vs "
        "{bare_read_server_cpu_ms:.2f} ms -> CPU-cost ratio {results_read_cpu_ratio:.2f}x",
        0.8,
        False,
        "x",
        "reads",
    ),
    Target(
        "auth_overhead_ratio",
        "Authentication's cost, throughput",
        "GET /_bench/bare with a device token {authenticated_get_rps:.0f} req/s vs the same "
        "GET without authentication {open_get_rps:.0f} req/s; per round "
        "{auth_overhead_round_ratios}\n"
        "       server CPU per request {authenticated_get_server_cpu_ms:.2f} vs "
        "{open_get_server_cpu_ms:.2f} ms",
        0.6,
        False,
        "x",
        "reads",
    ),
    Target(
        "vote_vs_tutorial_ratio",
        "Full vote vs the tutorial's vote",
        "POST /stickers/{{id}}/votes {full_vote_rps:.0f} req/s vs the Django tutorial's vote "
        "{tutorial_vote_rps:.0f} req/s (one row's F('votes') + 1, no authentication, no "
        "dedupe); per round {vote_vs_tutorial_round_ratios}\n"
        "       server CPU per request {full_vote_server_cpu_ms:.2f} vs "
        "{tutorial_vote_server_cpu_ms:.2f} ms",
        1.0,
        False,
        "x",
        "writes",
    ),
    Target(
        "live_lag_s",
        "Live results lag (max)",
        "results polled every 100 ms vs votes committed (2xx) before each poll was sent, at "
        "{live_lag_vote_rate:.0f} votes/s ({live_lag_votes_committed} votes, p50 "
        "{live_lag_vote_p50_ms:.0f} ms); p95 {live_lag_p95_s:.3f} s; counting each read's own "
        "time (p99 {live_lag_poll_p99_ms:.0f} ms): max {live_lag_upper_s:.3f} s",
        2.0,
        True,
        " s",
        "lag",
    ),
    Target(
        "finalize_1m_ratio",
        "Finalize, time",
        "finalize_sticker on a solo worker {finalize_1m_s:.2f} s (send -> state final) vs plain "
        "GROUP BY {group_by_1m_s:.3f} s over the same {finalize_votes:,} votes (without parallel "
        "workers {group_by_1m_serial_s:.3f} s: {finalize_1m_ratio_vs_serial:.2f}x)",
        5.0,
        True,
        "x",
        "finalize",
    ),
    Target(
        "finalize_worker_peak_mb",
        "Finalize, worker peak memory",
        "VmHWM of the solo worker process (idle after start: {finalize_worker_idle_mb:.0f} MB)",
        300.0,
        True,
        " MB",
        "finalize",
    ),
    Target(
        "reward_fanout_100k_ratio",
        "Reward fan-out, time",
        "process_reward_events on a solo worker {reward_fanout_100k_s:.2f} s (send -> all "
        "{reward_fanout_rows:,} badge grants visible; the pass also writes their feed entries and "
        "the 'your vote chose the ending' entries) vs plain INSERT … SELECT of the same grant rows "
        "{plain_insert_select_100k_s:.3f} s; per round {reward_fanout_round_ratios}\n"
        "       rule_apply alone (in-process) {reward_fanout_rule_apply_s:.2f} s = "
        "{reward_fanout_rule_apply_ratio:.2f}x; perk rule (+ entitlements): worker "
        "{reward_fanout_perk_100k_s:.2f} s = {reward_fanout_perk_100k_ratio:.2f}x, "
        "rule_apply alone {reward_fanout_perk_rule_apply_s:.2f} s = "
        "{reward_fanout_perk_rule_apply_ratio:.2f}x (plain {plain_insert_select_perk_100k_s:.3f} s)"
        "\n       one grant per winning counted voter in every run: {reward_fanout_exact}; "
        "worker peak RSS {reward_fanout_worker_peak_mb:.0f} MB (idle "
        "{reward_fanout_worker_idle_mb:.0f} MB)",
        3.0,
        True,
        "x",
        "fanout",
    ),
    Target(
        "analytics_read_ratio",
        "Analytics reads, throughput",
        "the lower of GET creators/me/analytics?days=90 {analytics_large_creator_read_rps:.0f} "
        "req/s vs bare GET {analytics_large_creator_bare_rps:.0f} "
        "(= {analytics_large_creator_read_ratio:.2f}x, "
        "p99 {analytics_large_creator_p99_ms:.0f} ms) "
        "and GET videos/{{id}}/analytics?days=90 {analytics_large_video_read_rps:.0f} vs "
        "{analytics_large_video_bare_rps:.0f} req/s (= {analytics_large_video_read_ratio:.2f}x), "
        "big creator (a fifth of {analytics_interactions:,} interactions)\n"
        "       server CPU per request: creator {analytics_large_creator_server_cpu_ms:.2f}, "
        "video {analytics_large_video_server_cpu_ms:.2f}, bare "
        "{analytics_large_creator_bare_server_cpu_ms:.2f} ms",
        0.5,
        False,
        "x",
        "analytics",
    ),
    Target(
        "analytics_p99_ms_at_half_rate",
        "Analytics reads, p99 at half rate",
        "the higher of: creator at {analytics_creator_half_rate_rps:.0f} req/s open loop (p50 "
        "{analytics_creator_p50_ms_at_half_rate:.1f}, p99 "
        "{analytics_creator_p99_ms_at_half_rate:.1f} ms), video at "
        "{analytics_video_half_rate_rps:.0f} req/s (p50 {analytics_video_p50_ms_at_half_rate:.1f}, "
        "p99 {analytics_video_p99_ms_at_half_rate:.1f} ms)",
        25.0,
        True,
        " ms",
        "analytics",
    ),
    Target(
        "analytics_size_ratio_10m_vs_1m",
        "Analytics reads, large vs small",
        "the lower of the creator and video read ratios (each against the bare GET of its own "
        "rounds) at {analytics_large_size:,} / at {analytics_small_size:,} interactions (creator "
        "{analytics_large_creator_read_ratio:.2f}x vs {analytics_small_creator_read_ratio:.2f}x, "
        "video {analytics_large_video_read_ratio:.2f}x vs {analytics_small_video_read_ratio:.2f}x;"
        " plain throughputs creator {analytics_large_creator_read_rps:.0f} vs "
        "{analytics_small_creator_read_rps:.0f}, video {analytics_large_video_read_rps:.0f} vs "
        "{analytics_small_video_read_rps:.0f} req/s)",
        0.8,
        False,
        "x",
        "analytics",
    ),
    Target(
        "analytics_lag_p99_s",
        "Analytics commit-to-visible lag",
        "{analytics_lag_likes} likes PUT at {analytics_lag_rate:.0f}/s (sustained: "
        "{analytics_lag_rate_sustained}), video analytics polled every "
        "{analytics_lag_poll_interval_s:g} s: p50 {analytics_lag_p50_s:.2f} s, max "
        "{analytics_lag_max_s:.2f} s, {analytics_lag_missing} never seen",
        60.0,
        True,
        " s",
        "analytics",
    ),
    Target(
        "hot_read_ratio",
        "Hot videos, throughput",
        "GET videos/hot {hot_read_rps:.0f} req/s vs bare GET {hot_bare_rps:.0f} req/s (p99 "
        "{hot_p99_ms:.0f} ms); server CPU per request {hot_server_cpu_ms:.2f} vs "
        "{hot_bare_server_cpu_ms:.2f} ms",
        0.8,
        False,
        "x",
        "analytics",
    ),
    Target(
        "rollup_rebuild_ratio",
        "Rollup rebuild, time",
        "analytics_rollups_rebuild() {analytics_large_rollup_rebuild_s:.1f} s vs plain GROUP BY "
        "(video, quarter hour) of the 5 tables {analytics_large_rollup_group_by_s:.2f} s "
        "(at {analytics_small_size:,}: {analytics_small_rollup_rebuild_s:.1f} vs "
        "{analytics_small_rollup_group_by_s:.2f} s); finished in time (else the ratio is the "
        "lower bound timeout / GROUP BY): {analytics_large_rollup_rebuild_finished}",
        3.0,
        True,
        "x",
        "analytics",
    ),
    Target(
        "heat_rebuild_ratio",
        "Heat rebuild, time",
        "heat_rebuild() {analytics_large_heat_rebuild_s:.2f} s vs plain GROUP BY likes per video "
        "{analytics_large_heat_group_by_s:.2f} s (at {analytics_small_size:,}: "
        "{analytics_small_heat_rebuild_s:.2f} vs {analytics_small_heat_group_by_s:.2f} s)",
        3.0,
        True,
        "x",
        "analytics",
    ),
    # The planted trends score 9-19 and the background's noise about 3 (a z-score), so a
    # detector that works finds all of them; 0.9 leaves room for one unlucky draw each way.
    Target(
        "trending_precision",
        "Trending, precision of the top 20",
        "planted real trends among the top 20 of GET hashtags/trending (24 h) over "
        "{trending_interactions:,} generated interactions on {trending_tags} tags "
        "({trending_positives} planted trends; decoys: 1 -> 5, a creator spamming a tag, "
        "uncounted bot likes, a falling tag)",
        0.9,
        False,
        "",
        "trending",
    ),
    Target(
        "trending_recall",
        "Trending, recall of the top 20",
        "planted real trends found in the top 20 / planted trends",
        0.9,
        False,
        "",
        "trending",
    ),
]


@dataclass(frozen=True)
class Info:
    """A figure the report prints without a target."""

    key: str
    title: str
    compared: str
    unit: str
    phase: str


INFO = [
    Info(
        "grant_lag_s",
        "Grant lag (max)",
        "grant first seen (polled every 100 ms) - the like's 2xx, for {grant_lag_likes} likes "
        "PUT /videos/{{id}}/like by distinct users at {grant_lag_like_rate:.0f}/s (open loop, p50 "
        "{grant_lag_like_p50_ms:.0f} ms, sustained: {grant_lag_rate_sustained}); p95 "
        "{grant_lag_p95_s:.3f} s, p50 {grant_lag_p50_s:.3f} s; {grant_lag_consumer_passes} "
        "consumer passes, {grant_lag_missing} likes without a grant\n"
        "       includes the wake-up debounce (WAKE_DEBOUNCE_SECONDS = "
        "{grant_lag_wake_debounce_s:g} s, the default); information, no target",
        " s",
        "grant_lag",
    ),
]
ALL_PHASES = {t.phase for t in TARGETS} | {i.phase for i in INFO}


class _Lenient(dict[str, Any]):
    """format_map that shows missing or null figures as '?', and a spread as min-median-max."""

    def __missing__(self, key: str) -> Any:
        return _Missing()

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, dict) and {"min", "median", "max"} <= value.keys():
            return f"{value['min']:.2f}-{value['max']:.2f} (median {value['median']:.2f})"
        return value


class _Missing:
    def __format__(self, spec: str) -> str:
        return "?"


def _fmt(value: Any, unit: str) -> str:
    if not isinstance(value, int | float):
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == " MB":
        return f"{value:.0f} MB"
    if unit == " s":
        return f"{value:.3f} s"
    if unit == "":
        return f"{value:.2f}"
    return f"{value:.1f}{unit}"


def _kind_of_run(results: dict[str, Any], phases: list[str]) -> str:
    kind = "QUICK (smaller, shorter) run" if results.get("quick") else "full-size run"
    if set(phases) != ALL_PHASES:
        kind += f", only {','.join(phases)}"
    return kind


def render(results: dict[str, Any], phases: list[str]) -> str:
    figures = _Lenient({k: v for k, v in results.items() if v is not None})
    lines = ["", "=" * 78, "Chorus benchmark (ratios measured side by side in one run)", "=" * 78]
    machine = results.get("machine", {})
    lines.append(
        f"date {results.get('date')}  machine: {machine.get('nproc')} CPUs, "
        f"{machine.get('memory_mb')} MB, Python {machine.get('python')}, "
        f"PostgreSQL {machine.get('postgres')}, load avg at start {machine.get('load_avg_start')}"
    )
    server = results.get("server", {})
    lines.append(
        f"server: gunicorn {server.get('workers')} x {server.get('worker_class')} "
        f"(threads {server.get('threads')}), Celery workers {server.get('celery_workers')}, "
        f"loopback; {_kind_of_run(results, phases)}"
    )
    lines.append("")
    for target in TARGETS:
        if target.phase not in phases:
            continue
        value = results.get(target.key)
        verdict = target.verdict(value)
        lines.append(
            f"[{verdict:4}] {target.title:32} {_fmt(value, target.unit):>10}   "
            f"target {target.bound_text()}"
        )
        lines.append(f"       {target.compared.format_map(figures)}")
    for info in INFO:
        if info.phase not in phases:
            continue
        lines.append(
            f"[info] {info.title:32} {_fmt(results.get(info.key), info.unit):>10}   no target"
        )
        lines.append(f"       {info.compared.format_map(figures)}")
    lines.append("")
    verdicts = [
        target.verdict(results.get(target.key)) for target in TARGETS if target.phase in phases
    ]
    lines.append(
        f"{verdicts.count('PASS')} of {len(verdicts)} targets pass"
        + (f", {verdicts.count('FAIL')} fail" if "FAIL" in verdicts else "")
    )
    return "\n".join(lines)


def verdicts(results: dict[str, Any], phases: list[str]) -> dict[str, str]:
    return {t.key: t.verdict(results.get(t.key)) for t in TARGETS if t.phase in phases}


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write(results: dict[str, Any], names: list[str]) -> list[Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(results), indent=2, sort_keys=True) + "\n"
    written = []
    for name in names:
        path = RESULTS_DIR / name
        path.write_text(text)
        written.append(path)
    return written
