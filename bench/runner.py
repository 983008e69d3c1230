"""`python -m bench`: start the stack, run the phases, print the report, write the JSON.

See docs/benchmarks.md for the method. Options:

  --only writes,reads,lag,finalize,fanout,grant_lag,trending,analytics
                                     run only these phases (default: all; the table of
                                     phases is bench/phases.py)
  --quick                            short phases, 100,000 votes instead of 1,000,000 and a
                                     10,000-user reward fan-out instead of 100,000
  --web-workers/--web-threads/--worker-class   gunicorn shape (default: 4 sync workers)
  --connections N                    closed-loop connections (default 16)

A full run (the default) writes bench/results/latest.json and bench/results/<date>.json; a
--quick or --only run writes bench/results/dev-latest.json only, so it never replaces the
figures of a full run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from typing import Any, NoReturn

import psutil
import redis

from bench import report
from bench.cpu import CpuGroups
from bench.phases import NAMES, PHASES, PhaseInputs
from bench.plan import Plan, Server
from bench.stack import (
    ROOT,
    Processes,
    celery_argv,
    celery_ready,
    clean_redis_db,
    clean_stale_redis_dbs,
    create_scratch_database,
    drop_scratch_database,
    drop_stale_databases,
    free_port,
    gunicorn_argv,
    pick_empty_redis_db,
    port_open,
    remove_stale_logs,
    say,
    server_version,
    wait_for,
    with_redis_db,
)

THROTTLE_VARS = ("THROTTLE_ANON", "THROTTLE_USER", "THROTTLE_WRITES", "THROTTLE_AUTH")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(NAMES), help="comma-separated phases")
    parser.add_argument(
        "--quick", action="store_true", help="short phases, 100k votes, 10k fan-out"
    )
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--web-threads", type=int, default=1)
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.phases) - set(NAMES)
    if unknown:
        parser.error(f"unknown phase(s) {sorted(unknown)}; choose from {NAMES}")
    return args


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def machine_info(database_url: str) -> dict[str, Any]:
    memory_mb = psutil.virtual_memory().total // 2**20
    return {
        "nproc": os.cpu_count(),
        "memory_mb": memory_mb,
        "python": platform.python_version(),
        "postgres": server_version(database_url),
        "platform": platform.platform(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def claim_redis_dbs(url: str, count: int, owner: str, claimed: list[int]) -> None:
    """Pick `count` empty Redis database indexes, mark them as ours and add them to claimed."""
    for _attempt in range(count * 4):
        if len(claimed) == count:
            return
        index = pick_empty_redis_db(url)
        client = redis.Redis.from_url(with_redis_db(url, index), socket_timeout=5)
        try:
            if client.set("bench:owner", owner, nx=True):
                claimed.append(index)
        finally:
            client.close()
    if len(claimed) < count:
        raise RuntimeError("could not claim empty Redis database indexes")


def http_get_status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def redis_pid(url: str) -> int | None:
    """The Redis server's pid (for CPU accounting), when it runs on this machine."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        pid = int(client.info("server").get("process_id", 0))
    except redis.RedisError:
        return None
    finally:
        client.close()
    return pid if pid and psutil.pid_exists(pid) else None


def queues_drained(broker_url: str, queues: list[str], timeout: float = 30.0) -> bool:
    """Wait (bounded) until the broker queues are empty, then a moment for the running task."""
    client = redis.Redis.from_url(broker_url, socket_timeout=5)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(int(client.llen(queue)) == 0 for queue in queues):
                time.sleep(0.5)
                return True
            time.sleep(0.1)
        return False
    finally:
        client.close()


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pid = os.getpid()
        self.admin_url = os.environ.get("DATABASE_URL", "")
        self.redis_url = os.environ.get("REDIS_URL", "")
        if not self.admin_url or not self.redis_url:
            raise SystemExit("DATABASE_URL and REDIS_URL must be set (make bench sets them)")
        self.db_name = f"chorus_bench_{self.pid}"
        self.db_created = False
        self.redis_dbs: list[int] = []
        self.processes: Processes | None = None
        self.durations: dict[str, float] = {}
        self.results: dict[str, Any] = {}

    # --- lifecycle -----------------------------------------------------------------------------
    def cleanup(self) -> None:
        # Bounded and best effort, in order: processes, then the database, then Redis.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if self.processes is not None:
                self.processes.stop_all()
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            if self.db_created:
                try:
                    drop_scratch_database(self.admin_url, self.db_name)
                    say(f"Dropped the scratch database {self.db_name}")
                except Exception as exc:
                    say(f"could not drop {self.db_name}: {exc!r}")
            for index in self.redis_dbs:
                try:
                    deleted = clean_redis_db(self.redis_url, index)
                    say(f"Removed {deleted} keys from Redis database {index}")
                except Exception as exc:
                    say(f"could not clean Redis database {index}: {exc!r}")
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def timed(self, name: str, started: float) -> None:
        self.durations[name] = round(time.monotonic() - started, 1)

    def execute(self) -> int:
        args = self.args
        total_started = time.monotonic()
        plan = Plan.make(args.quick)
        plan.connections = args.connections

        started = time.monotonic()
        machine = machine_info(self.admin_url)
        for name in drop_stale_databases(self.admin_url):
            say(f"Dropped {name}, left behind by a benchmark run that was killed")
        remove_stale_logs()
        for index in clean_stale_redis_dbs(self.redis_url):
            say(f"Emptied Redis database {index}, left behind by a benchmark run that was killed")
        claim_redis_dbs(self.redis_url, 2, f"bench-{self.pid}", self.redis_dbs)
        cache_db, broker_db = self.redis_dbs
        say(f"Creating the scratch database {self.db_name}")
        self.db_created = True  # set first: a Ctrl-C right after CREATE still drops it
        scratch_url = create_scratch_database(self.admin_url, self.db_name)
        broker_url = with_redis_db(self.redis_url, broker_db)
        env = {
            **os.environ,
            "DATABASE_URL": scratch_url,
            "REDIS_URL": with_redis_db(self.redis_url, cache_db),
            "CACHE_KEY_PREFIX": f"bench-{self.pid}",
            "CELERY_BROKER_URL": broker_url,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_DEBUG": "false",
            "BENCH_ENDPOINTS": "true",
            "PYTHONUNBUFFERED": "1",
            **dict.fromkeys(THROTTLE_VARS, "1000000/min"),
        }
        os.environ.update(env)
        say(
            f"Redis: cache in db {cache_db} (prefix bench-{self.pid}), broker in db {broker_db}; "
            "migrating"
        )
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if migrate.returncode:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-3000:]}")

        import django

        django.setup()
        from bench import fixtures

        selected = [phase for phase in PHASES if phase.name in args.phases]
        for phase in selected:
            phase.measure()  # imported now: a phase module that cannot load fails the run here

        users = fixtures.users_create("bench-w-", plan.write_users)
        creator, video_id = fixtures.creator_video("bench-creator")
        stickers = fixtures.poll_stickers_create(creator, video_id, plan.stickers)
        self.timed("setup", started)

        self.processes = Processes(env)
        port = free_port()
        web = self.processes.start(
            "gunicorn",
            gunicorn_argv(port, args.web_workers, args.web_threads, args.worker_class),
        )
        # Live workers as SPEC §7 runs them, one per kind of work so a flood of one cannot
        # starve the other: tallies, and everything else but `closing` (whose finalize_sticker
        # the finalize phase runs on a worker of its own).
        from django.conf import settings

        other_queues = [
            name for name in settings.CELERY_TASK_QUEUE_NAMES if name not in ("tallies", "closing")
        ]
        tally_worker = self.processes.start(
            "celery-tallies", celery_argv("bench-tallies", "tallies")
        )
        other_worker = self.processes.start(
            "celery-other", celery_argv("bench-other", ",".join(other_queues))
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: port_open(port), "listening", web, timeout=60)
        wait_for(
            lambda: http_get_status(f"{base}/api/v1/_bench/bare", users[0].token) == 200,
            "serving the bare endpoint",
            web,
            timeout=60,
        )
        for worker in (tally_worker, other_worker):
            wait_for(functools.partial(celery_ready, worker), "ready", worker, timeout=60)
        say(
            f"gunicorn pid {web.pid} on 127.0.0.1:{port} ({args.web_workers} x "
            f"{args.worker_class}, threads {args.web_threads}); Celery workers: tallies pid "
            f"{tally_worker.pid}, {','.join(other_queues)} pid {other_worker.pid} (solo each)"
        )
        server = Server(
            "127.0.0.1",
            port,
            CpuGroups(
                web_pid=web.pid,
                workers={"tallies_worker": tally_worker.pid, "other_worker": other_worker.pid},
                redis_pid=redis_pid(self.redis_url),
                postgres_pids=fixtures.backend_pids,
            ),
            settle=functools.partial(queues_drained, broker_url, ["tallies", *other_queues]),
        )

        inputs = PhaseInputs(
            server=server,
            plan=plan,
            processes=self.processes,
            database_url=scratch_url,
            users=users,
            stickers=stickers,
            creator_video=(creator, video_id),
            results=self.results,
        )
        for phase in selected:
            started = time.monotonic()
            self.results.update(phase.run(inputs))
            self.timed(phase.name, started)
        self.timed("total", total_started)

        now = dt.datetime.now(dt.UTC)
        self.results.update(
            {
                "date": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "machine": machine,
                "durations": self.durations,
                "quick": plan.quick,
                "phases": args.phases,
                "server": {
                    "workers": args.web_workers,
                    "threads": args.web_threads,
                    "worker_class": args.worker_class,
                    "celery_workers": ["tallies (solo)", f"{','.join(other_queues)} (solo)"],
                    "connections": plan.connections,
                },
                "plan": {
                    "rounds": plan.rounds,
                    "round_s": plan.round_s,
                    "warmup_s": plan.warmup_s,
                    "open_loop_s": plan.open_loop_s,
                    "lag_s": plan.lag_s,
                    "write_users": plan.write_users,
                    "stickers": plan.stickers,
                    "finalize_runs": plan.finalize_runs,
                    "fanout_winners": plan.fanout_winners,
                    "fanout_runs": plan.fanout_runs,
                    "grant_lag_rate": plan.grant_lag_rate,
                    "grant_lag_s": plan.grant_lag_s,
                    "grant_lag_poll_interval_s": plan.grant_lag_poll_interval_s,
                    "grant_lag_videos": plan.grant_lag_videos,
                },
            }
        )
        self.results["targets"] = report.verdicts(self.results, args.phases)
        print(report.render(self.results, args.phases), flush=True)
        full = not plan.quick and args.phases == NAMES
        names = ["latest.json", f"{now:%Y-%m-%d}.json"] if full else ["dev-latest.json"]
        for path in report.write(self.results, names):
            say(f"wrote {path.relative_to(ROOT)}")
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    run = Run(args)
    try:
        return run.execute()
    except KeyboardInterrupt:
        print("\n==> Interrupted: stopping and cleaning up", flush=True)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        run.cleanup()
