"""`make bench-integrity`: the integrity detector measured on generated like streams.

For each seed and size: generate the attacked stream and its clean replay (bench.integrity.
generate), run `manage.py integrity_evaluate` on each as a child process (its wall time; its
peak resident memory as the command reports it, VmHWM), score FLAGGED.csv against the ground truth
(bench.integrity.score), check the targets, print a table and write
bench/results/integrity.json.

Seeds: TUNING_SEEDS are the ones to tune on; HELD_OUT_SEED is never to be tuned on (only read
its figures when a change is done). Every seed runs at 1M likes; the held-out seed also at 10M
(the size the runtime and memory targets are set at).

Without the detection engine it still generates and loads (`--load-only`, for the timings),
says that detection is unavailable and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.integrity.generate import FAMILIES, world_generate, world_write
from bench.integrity.score import flagged_read, score, truth_read

ROOT = Path(__file__).resolve().parent.parent.parent
RESULTS = ROOT / "bench" / "results" / "integrity.json"

TUNING_SEEDS = (101, 202, 303)
HELD_OUT_SEED = 404
SMALL = 1_000_000
LARGE = 10_000_000

TARGETS = {
    "precision": 0.9995,
    "genuine_flagged_per_million": 5.0,
    "clean_genuine_flagged_per_million": 2.0,
    "family_recall": 0.97,
    "one_shot_recall": 0.95,
    "macro_recall": 0.98,
    "detect_s": 60.0,
    "total_s": 180.0,
    "peak_rss_mb": 1536.0,
}


def detection_available() -> bool:
    try:
        return importlib.util.find_spec("integrity.detection") is not None
    except ModuleNotFoundError:
        return False


def _child_run(command: list[str]) -> tuple[int, float, float, list[str]]:
    """(exit code, wall seconds, peak RSS in MB, last stderr lines) of a child process; its
    progress is passed through to our standard error."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    tail: list[str] = []
    assert process.stderr is not None
    for line in process.stderr:
        sys.stderr.write(f"    {line}")
        tail = [*tail[-19:], line.rstrip()]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    return process.returncode, wall, usage.ru_maxrss / 1024, tail


def case_run(
    *, seed: int, likes: int, clean: bool, workdir: Path, detect: bool, keep: bool
) -> dict[str, Any]:
    name = f"seed{seed}-{likes // 1_000_000}m{'-clean' if clean else ''}"
    events, truth = workdir / f"{name}.csv", workdir / f"{name}-truth.csv"
    flagged, report_path = workdir / f"{name}-flagged.csv", workdir / f"{name}-report.json"
    print(f"==> {name}: generating", file=sys.stderr, flush=True)
    started = time.perf_counter()
    world = world_generate(seed=seed, likes=likes, clean=clean)
    generated = time.perf_counter()
    world_write(world, events, truth)
    written = time.perf_counter()
    counts = world.counts
    del world
    result: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "held_out": seed == HELD_OUT_SEED,
        "likes_target": likes,
        "clean": clean,
        "generated": counts,
        "generate_s": round(generated - started, 1),
        "write_csv_s": round(written - generated, 1),
        "csv_mb": round(events.stat().st_size / 2**20, 1),
    }
    command = [sys.executable, "manage.py", "integrity_evaluate", str(events)]
    command += ["--report-json", str(report_path)]
    command += ["--out", str(flagged)] if detect else ["--load-only"]
    print(f"==> {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    code, wall, peak, tail = _child_run(command)
    # wait4's ru_maxrss counts what this process held when it forked the child as well: the
    # command's own peak (VmHWM) is in its report
    result.update(exit_code=code, evaluate_wall_s=round(wall, 1), wait4_maxrss_mb=round(peak))
    if report_path.exists():
        result["evaluate_report"] = json.loads(report_path.read_text())
        result["evaluate_peak_rss_mb"] = result["evaluate_report"].get("peak_rss_mb")
    if code != 0:
        result["error"] = tail[-3:]
    elif detect:
        result["score"] = score(truth_read(truth), flagged_read(flagged))
    if not keep:
        for path in (events, truth, flagged, report_path):
            path.unlink(missing_ok=True)
    return result


def targets_check(result: dict[str, Any]) -> dict[str, bool]:
    """Each target that applies to this run: met or not."""
    checks: dict[str, bool] = {}
    s = result.get("score")
    if s is not None:
        per_million = s["genuine_flagged_per_million"] or 0.0
        if result["clean"]:
            checks["clean_genuine_flagged_per_million"] = (
                per_million <= TARGETS["clean_genuine_flagged_per_million"]
            )
        else:
            checks["precision"] = (s["precision"] or 0.0) >= TARGETS["precision"]
            checks["genuine_flagged_per_million"] = (
                per_million <= TARGETS["genuine_flagged_per_million"]
            )
            for family, row in s["families"].items():
                bar = TARGETS["one_shot_recall" if family == "one_shot" else "family_recall"]
                checks[f"recall_{family}"] = (row["recall"] or 0.0) >= bar
            checks["macro_recall"] = (s["macro_recall"] or 0.0) >= TARGETS["macro_recall"]
    if result["likes_target"] >= LARGE and result.get("exit_code") == 0:
        phases = result.get("evaluate_report", {}).get("phases", {})
        if "detect" in phases:
            checks["detect_s"] = phases["detect"] <= TARGETS["detect_s"]
            checks["total_s"] = result["evaluate_wall_s"] <= TARGETS["total_s"]
        peak = result.get("evaluate_peak_rss_mb")
        checks["peak_rss_mb"] = peak is not None and peak <= TARGETS["peak_rss_mb"]
    return checks


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def result_print(result: dict[str, Any]) -> None:
    report = result.get("evaluate_report", {})
    phases = report.get("phases", {})
    label = " (HELD OUT)" if result["held_out"] else ""
    print(
        f"\n{result['name']}{label}: {result['generated']['likes']:,} likes, "
        f"{result['generated']['accounts']:,} accounts ({result['generated']['attack_accounts']:,} "
        f"attack); generate {result['generate_s']} s + CSV {result['write_csv_s']} s "
        f"({result['csv_mb']} MB)"
    )
    print(
        "  evaluate: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
        + f"; wall {result['evaluate_wall_s']} s, peak {result.get('evaluate_peak_rss_mb')} MB"
        + (
            f"; FAILED (exit {result['exit_code']}): {result.get('error')}"
            if result["exit_code"]
            else ""
        )
    )
    s = result.get("score")
    if s is None:
        return
    print(
        f"  flagged {s['flagged']:,}: precision {_fmt(s['precision'])} recall {_fmt(s['recall'])} "
        f"F1 {_fmt(s['f1'])} macro recall {_fmt(s['macro_recall'])}; genuine flagged "
        f"{s['false_positives']} = {_fmt(s['genuine_flagged_per_million'], 2)} per million"
    )
    if s["families"] or s["bands"]:
        print(
            f"  {'family / band':<16}{'accounts':>9}{'flagged':>9}{'precision':>11}"
            f"{'recall':>9}{'F1':>8}"
        )
        for name, row in [
            *s["families"].items(),
            *(("size " + k, v) for k, v in s["bands"].items()),
        ]:
            print(
                f"  {name:<16}{row['accounts']:>9}{row['flagged']:>9}{_fmt(row['precision']):>11}"
                f"{_fmt(row['recall']):>9}{_fmt(row['f1']):>8}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.integrity", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--seeds", type=lambda s: [int(x) for x in s.split(",")], default=list(TUNING_SEEDS)
    )
    parser.add_argument("--held-out", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--quick", action="store_true", help="one tuning seed at 1M, no 10M")
    parser.add_argument("--no-large", action="store_true", help="skip the 10M runs")
    parser.add_argument("--no-clean", action="store_true", help="skip the clean replays")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".local" / "bench-integrity")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    detect = detection_available()
    if not detect:
        print(
            "==> detection engine not available (integrity.detection is missing): generating and "
            "loading only, for the timings; no detection figures",
            file=sys.stderr,
        )
    plan: list[tuple[int, int, bool]] = []
    seeds = args.seeds[:1] if args.quick else args.seeds
    for seed in [*seeds, *([] if args.quick else [args.held_out])]:
        for clean in (False,) if args.no_clean else (False, True):
            plan.append((seed, SMALL, clean))
    if not (args.quick or args.no_large):
        for clean in (False,) if args.no_clean else (False, True):
            plan.append((args.held_out, LARGE, clean))
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    try:
        for seed, likes, clean in plan:
            result = case_run(
                seed=seed,
                likes=likes,
                clean=clean,
                workdir=args.workdir,
                detect=detect,
                keep=args.keep,
            )
            result["targets"] = targets_check(result)
            results.append(result)
            result_print(result)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    failed = [
        f"{r['name']}: {name}" for r in results for name, ok in r["targets"].items() if not ok
    ] + [f"{r['name']}: exit {r['exit_code']}" for r in results if r["exit_code"]]
    document = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "detection": "available" if detect else "unavailable",
        "tuning_seeds": list(seeds),
        "held_out_seed": args.held_out,
        "families": list(FAMILIES),
        "targets": TARGETS,
        "seconds": round(time.perf_counter() - started, 1),
        "runs": results,
        "failed_targets": failed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(
        f"\n==> wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
    )
    if not detect:
        print("==> detection unavailable: no detection figures (exit 2)")
        return 2
    if failed:
        print("==> targets not met:\n    " + "\n    ".join(failed))
        return 1
    print("==> every target met")
    return 0
