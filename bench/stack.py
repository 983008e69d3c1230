"""The benchmark's own stack: scratch database, Redis namespace, gunicorn and Celery workers.

Everything here is created by the run and removed at its end, also on failure or Ctrl-C:
the scratch database `chorus_bench_<pid>` (DROP ... WITH (FORCE)), the Redis keys it wrote
(an otherwise empty Redis database index, cache keys under the prefix `bench-<pid>`), and the
processes it started (SIGTERM, bounded wait, SIGKILL; by the pid it started, never by name).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".local" / "bench"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


# --- PostgreSQL ------------------------------------------------------------------------------
def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_scratch_database(admin_url: str, name: str) -> str:
    """CREATE DATABASE name on the server of admin_url; returns its URL."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def drop_scratch_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def bench_process_alive(pid: int) -> bool:
    """Is pid a live `python -m bench` (so its scratch database and Redis index are in use)?"""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "bench" in cmdline


def drop_stale_databases(admin_url: str) -> list[str]:
    """Drop chorus_bench_<pid> databases left by runs that were killed (SIGKILL, power off)."""
    dropped = []
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^chorus_bench_[0-9]+$'"
        ).fetchall()
        for (name,) in rows:
            if bench_process_alive(int(name.rsplit("_", 1)[1])):
                continue
            statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(statement.format(sql.Identifier(name)))
            dropped.append(name)
    return dropped


def remove_stale_logs() -> int:
    """Delete process logs (.local/bench/<name>-<pid>.log) of runs that are over."""
    removed = 0
    if not LOG_DIR.is_dir():
        return 0
    for path in LOG_DIR.glob("*-*.log"):
        pid = path.stem.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not bench_process_alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def server_version(url: str) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# --- Redis -----------------------------------------------------------------------------------
def with_redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{index}"))


def pick_empty_redis_db(url: str) -> int:
    """The highest database index (>= 2) of the server that holds no key: ours for the run."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        count = int(client.config_get("databases").get("databases") or 16)
    except redis.ResponseError:  # CONFIG disabled
        count = 16
    keyspace = client.info("keyspace")
    client.close()
    for index in range(count - 1, 1, -1):
        if f"db{index}" not in keyspace:
            return index
    raise RuntimeError("no empty Redis database index left for the benchmark")


def clean_stale_redis_dbs(url: str) -> list[int]:
    """Empty the database indexes marked `bench:owner` by runs that no longer exist."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keyspace = client.info("keyspace")
    finally:
        client.close()
    cleaned = []
    for name in keyspace:
        index = int(str(name)[2:])
        if index < 2:
            continue
        db = redis.Redis.from_url(with_redis_db(url, index), socket_timeout=5)
        try:
            owner = db.get("bench:owner")
        finally:
            db.close()
        if owner is None:
            continue
        text = owner.decode() if isinstance(owner, bytes) else str(owner)
        _, _, pid = text.rpartition("-")
        if pid.isdigit() and not bench_process_alive(int(pid)):
            clean_redis_db(url, index)
            cleaned.append(index)
    return cleaned


def clean_redis_db(url: str, index: int) -> int:
    """Delete the keys of the run's own database index (picked empty at the start)."""
    client = redis.Redis.from_url(with_redis_db(url, index), socket_timeout=5)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


# --- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child if the benchmark dies without cleaning up (SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Processes:
    """Every process the run started, stopped in reverse order."""

    env: dict[str, str]
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Proc:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"{name}-{os.getpid()}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: a terminal Ctrl-C reaches only us, and we stop it.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 15.0) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.terminate()
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                say(f"{proc.name} (pid {proc.pid}) did not stop in {timeout:.0f}s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    # The group we created for it (gunicorn workers, celery children); its
                    # leader is not reaped yet, so the group id is still ours.
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(timeout=10)
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                say(f"could not stop {proc.name} (pid {proc.pid}): {exc!r}")


def wait_for(predicate: Callable[[], bool], what: str, proc: Proc, timeout: float = 60.0) -> None:
    """Poll predicate() every 0.1 s until true; fail if proc exits or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited (status {proc.popen.returncode}) before {what}:\n"
                + proc.log_tail()
            )
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {what} not within {timeout:.0f}s:\n" + proc.log_tail())


def gunicorn_argv(port: int, workers: int, threads: int, worker_class: str) -> list[str]:
    """gunicorn as `make run` starts it: its config module, metrics in multiprocess mode (a fresh
    directory per run, as production has one per host)."""
    metrics_dir = LOG_DIR / f"metrics-{os.getpid()}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    return [
        "env",
        f"PROMETHEUS_MULTIPROC_DIR={metrics_dir}",
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:config.gunicorn",
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        worker_class,
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "--keep-alive",
        "5",
        "--backlog",
        "2048",
        # gunicorn 27's control socket would be one shared ~/.gunicorn/gunicorn.ctl.
        "--no-control-socket",
    ]


def celery_argv(name: str, queues: str, pool: str = "solo", concurrency: int = 1) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        pool,
        "--queues",
        queues,
        "--hostname",
        f"{name}-{os.getpid()}@localhost",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
    ]
    if pool != "solo":
        argv += ["--concurrency", str(concurrency)]
    return argv


def celery_ready(proc: Proc) -> bool:
    return "ready." in proc.log_tail(20000)
