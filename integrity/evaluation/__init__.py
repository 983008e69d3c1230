"""`integrity_evaluate` (SPEC §5 "Evaluation"): an events CSV in, the accounts detection flags out.

1. check: the whole file, line by line (csv_check), before anything is created; a malformed
   line stops the run with its number and what is wrong. The likes are written as COPY rows to
   a private temporary file meanwhile (the accounts and videos numbered in memory).
2. the detection engine is imported (a run without it stops here, before any database work);
3. create: a scratch database of its own (unique name), `migrate`d to the project's schema;
4. load: accounts, videos and likes by COPY (scratch.py);
5. read: the likes back as `Events` by integrity.detection.load.events_from_likes, the reader
   the light and nightly passes use, on the scratch database's own connection;
6. detect: integrity.detection.detect, the same call the passes make;
7. write: FLAGGED.csv (`user_id,score,signals`; the file's own user ids; signals joined by `|`;
   highest score first), written to a temporary name and renamed at the end;
8. the scratch database is dropped and the temporary file deleted, whatever happened (also on
   Ctrl-C or SIGTERM).
Progress goes to standard error, one line per phase with counts and seconds.
"""

from __future__ import annotations

import csv
import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Protocol

from integrity.evaluation.csv_check import MalformedEvents, events_csv_check
from integrity.evaluation.scratch import ScratchDatabase, ScratchError

__all__ = ["EngineUnavailable", "EvaluationError", "MalformedEvents", "ScratchError", "evaluate"]

FLAGGED_HEADER = ["user_id", "score", "signals"]
SIGNAL_SEPARATOR = "|"


class Stream(Protocol):
    """Where progress goes (a text file, or a management command's stderr)."""

    def write(self, text: str, /) -> Any: ...

    def flush(self) -> Any: ...


class EvaluationError(RuntimeError):
    pass


class EngineUnavailable(EvaluationError):
    pass


# every like of the file, whenever it was
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def detection_engine(*, load_only: bool) -> tuple[Any, Any]:
    """(detect or None with load_only, events_from_likes) from integrity.detection; imported
    before anything is created, so that a checkout without it stops cleanly."""
    try:
        from integrity.detection import detect
        from integrity.detection.load import events_from_likes
    except ImportError as error:
        if error.name is not None and not error.name.startswith("integrity"):
            raise  # the engine is there but something it needs is not: say so as it is
        raise EngineUnavailable(
            f"detection engine not available ({error}); nothing was loaded"
        ) from error
    return (None if load_only else detect), events_from_likes


class Progress:
    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.phases: dict[str, float] = {}
        self.started = time.perf_counter()

    def say(self, text: str) -> None:
        self.stream.write(f"integrity_evaluate: {text}\n")
        self.stream.flush()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(time.perf_counter() - started, 2)

    def since(self, name: str) -> str:
        peak = peak_memory_mb()
        return f"{self.phases.get(name, 0.0):.1f} s; peak memory so far {peak:.0f} MB"


def peak_memory_mb() -> float:
    """This process's peak resident memory: VmHWM, whose count starts at exec (getrusage's
    ru_maxrss keeps what the parent had at fork), or ru_maxrss where /proc has no VmHWM."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C, through the clean-up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait while the scratch database is dropped (a second Ctrl-C must not
    leave it behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _flagged_write(out_path: Path, rows: list[tuple[str, float, tuple[str, ...]]]) -> None:
    partial = out_path.with_name(f".{out_path.name}.partial")
    try:
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(FLAGGED_HEADER)
            for user_id, score, signals in sorted(rows, key=lambda r: (-r[1], r[0])):
                writer.writerow([user_id, f"{score:.6g}", SIGNAL_SEPARATOR.join(signals)])
        os.replace(partial, out_path)
    finally:
        partial.unlink(missing_ok=True)


def evaluate(
    *,
    events_path: Path,
    out_path: Path | None,
    stderr: Stream,
    load_only: bool = False,
    base_alias: str = "default",
) -> dict[str, Any]:
    """Run it; returns the report (phases in seconds, counts). Raises MalformedEvents,
    EngineUnavailable or EvaluationError before anything was created."""
    progress = Progress(stderr)
    if not events_path.is_file():
        raise EvaluationError(f"{events_path}: no such file; nothing was loaded")
    if out_path is not None and not out_path.parent.is_dir():
        raise EvaluationError(
            f"--out {out_path}: the directory {out_path.parent} does not exist; nothing was loaded"
        )
    report: dict[str, Any] = {"phases": progress.phases}
    with TemporaryDirectory(prefix="integrity-evaluate-") as temporary:
        rows_path = Path(temporary) / "likes.copy"
        progress.say(f"check: reading {events_path}")

        def lines_checked(lines: int) -> None:
            if lines % 1_000_000 == 0:
                progress.say(f"check: {lines:,} lines")

        with progress.phase("check"), rows_path.open("w", encoding="utf-8") as rows:
            checked = events_csv_check(events_path, rows, progress=lines_checked)
        report.update(
            likes=checked.likes, accounts=len(checked.account_ids), videos=len(checked.video_ids)
        )
        progress.say(
            f"check: {checked.likes:,} likes, {len(checked.account_ids):,} accounts, "
            f"{len(checked.video_ids):,} videos: the file is well-formed "
            f"({progress.since('check')})"
        )
        detect, events_from_likes = detection_engine(load_only=load_only)
        if checked.likes == 0:
            progress.say("no likes: nothing to detect")
            if out_path is not None and not load_only:
                _flagged_write(out_path, [])
            report["flagged"] = 0
            return report

        scratch = ScratchDatabase(base_alias)
        with _sigterm_interrupts():
            try:
                with progress.phase("create"):
                    scratch.create()
                    scratch.migrate()
                progress.say(
                    f"create: scratch database {scratch.name} ({progress.since('create')})"
                )
                with progress.phase("load"):
                    started = time.perf_counter()
                    at = checked.first_ts or datetime.now(UTC)
                    scratch.accounts_load(checked.account_ids, at)
                    scratch.videos_load(checked.video_creator, at)
                    del checked
                    load_timings = {"accounts_videos": time.perf_counter() - started}
                    duplicates = scratch.likes_load(rows_path, load_timings)
                    report["load_detail"] = {k: round(v, 2) for k, v in load_timings.items()}
                    rows_path.unlink()
                report["duplicates_dropped"] = duplicates
                progress.say(
                    f"load: {report['likes']:,} likes by COPY"
                    + (
                        f", {duplicates:,} repeated likes dropped (the earliest stays)"
                        if duplicates
                        else ""
                    )
                    + f" ({progress.since('load')}: "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in load_timings.items())
                    + ")"
                )
                with progress.phase("read"):
                    events = events_from_likes(
                        since=EARLIEST, until=LATEST, database=scratch.connection
                    )
                progress.say(
                    f"read: {len(events):,} likes as Events by integrity.detection.load "
                    f"({progress.since('read')})"
                )
                if detect is not None:
                    progress.say("detect: running integrity.detection.detect")
                    with progress.phase("detect"):
                        flags = list(detect(events))
                    progress.say(
                        f"detect: {len(flags):,} accounts flagged ({progress.since('detect')})"
                    )
                    with progress.phase("write"):
                        # the loader labels accounts by database id; the file's ids are the
                        # scratch accounts' usernames
                        account_ids = scratch.usernames(
                            [int(events.user_ids[int(f.user)]) for f in flags]
                        )
                        rows_out = [
                            (
                                account_ids[int(events.user_ids[int(f.user)])],
                                float(f.score),
                                tuple(f.signals),
                            )
                            for f in flags
                        ]
                        if out_path is not None:
                            _flagged_write(out_path, rows_out)
                    report["flagged"] = len(rows_out)
                    progress.say(f"write: {out_path} ({progress.since('write')})")
                del events
            finally:
                with progress.phase("drop"), _signals_held():
                    scratch.drop()
                progress.say(f"drop: scratch database {scratch.name} dropped")
    report["peak_rss_mb"] = round(peak_memory_mb(), 1)
    report["total_s"] = round(time.perf_counter() - progress.started, 2)
    progress.say(f"done in {report['total_s']:.1f} s, peak memory {report['peak_rss_mb']:.0f} MB")
    return report
