"""The readable report (each selected phase's rows of the table, bench.phases) and the JSON
results file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.phases import NAMES, PHASES, Phase

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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
    if set(phases) != set(NAMES):
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
    for phase in _selected(phases):
        for target in phase.targets:
            value = results.get(target.key)
            verdict = target.verdict(value)
            lines.append(
                f"[{verdict:4}] {target.title:32} {_fmt(value, target.unit):>10}   "
                f"target {target.bound_text()}"
            )
            lines.append(f"       {target.compared.format_map(figures)}")
        for info in phase.info:
            lines.append(
                f"[info] {info.title:32} {_fmt(results.get(info.key), info.unit):>10}   no target"
            )
            lines.append(f"       {info.compared.format_map(figures)}")
    lines.append("")
    verdicts = [
        target.verdict(results.get(target.key))
        for phase in _selected(phases)
        for target in phase.targets
    ]
    lines.append(
        f"{verdicts.count('PASS')} of {len(verdicts)} targets pass"
        + (f", {verdicts.count('FAIL')} fail" if "FAIL" in verdicts else "")
    )
    return "\n".join(lines)


def verdicts(results: dict[str, Any], phases: list[str]) -> dict[str, str]:
    return {
        target.key: target.verdict(results.get(target.key))
        for phase in _selected(phases)
        for target in phase.targets
    }


def _selected(phases: list[str]) -> list[Phase]:
    """The table's rows of the phases that ran, in the table's order."""
    return [phase for phase in PHASES if phase.name in phases]


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
