"""A whole `make run` stack of its own, for the tests that break things.

The suite's PostgreSQL and Redis are shared by every test process, so nothing here stops them:
each `Stack` runs `make run` with its own data directory (CHORUS_LOCAL_DIR), its own PostgreSQL
and Redis on free loopback ports, gunicorn, a Celery worker and beat — the very processes and
supervisor a developer gets — and the tests kill, stop and restart those. Everything is driven
from outside, as an operator or a chaos client would: HTTP on loopback, SIGKILL by pid, the
services script to stop and start PostgreSQL and Redis, psycopg for exact checks.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent.parent

# The suite's own connection settings must not leak into the stack: it would use them instead
# of starting its own servers.
_INHERITED_OUT = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; its value, or the last falsy one after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    seconds: float


@dataclass
class Stack:
    name: str
    local_dir: Path = field(init=False)
    port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.local_dir = ROOT / ".local" / f"stack-{self.name}"
        self.log_path = ROOT / ".local" / f"stack-{self.name}.log"

    # --- the process tree ---------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _INHERITED_OUT and not key.startswith("PYTEST_")
        }
        env.update(
            CHORUS_LOCAL_DIR=str(self.local_dir),
            CHORUS_PG_PORT=str(self.pg_port),
            CHORUS_REDIS_PORT=str(self.redis_port),
            PORT=str(self.port),
            CELERY_METRICS_PORT=str(self.metrics_port),
            DJANGO_SETTINGS_MODULE="config.settings.local",
            CHORUS_SEED_DEMO="0",
            CACHE_KEY_PREFIX="chorus",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 240) -> None:
        """`make run` in a process group of its own; returns once the API answers."""
        self.local_dir.parent.mkdir(exist_ok=True)
        log = self.log_path.open("wb")
        process = self.process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        up = wait_for(lambda: "Chorus is up" in self.log() or process.poll() is not None, timeout)
        if not up or process.poll() is not None:
            self.kill_everything()
            raise RuntimeError(f"make run did not come up:\n{self.log()[-4000:]}")
        wait_for(lambda: self.worker_ready_count() >= 1, 60)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def child_pids(self, name: str) -> list[int]:
        """Pids of `name` (web, worker, beat) in the order the supervisor started them."""
        return [int(pid) for pid in re.findall(rf"==> Started {name} \(pid (\d+)\)", self.log())]

    def current_pid(self, name: str) -> int:
        return self.child_pids(name)[-1]

    def worker_ready_count(self) -> int:
        return len(re.findall(r"celery@\S+ ready\.", self.log()))

    def group_pids(self, leader: int) -> list[int]:
        """The live processes of a child's process group (gunicorn or celery and their pool)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == leader and fields[0] != "Z":
                found.append(int(entry.name))
        return found

    def server_pids(self) -> list[int]:
        """PostgreSQL's postmaster and the Redis server of this stack, while they run."""
        pids = []
        for pid_file in (
            self.local_dir / "postgres" / "postmaster.pid",
            self.local_dir / "redis" / "redis.pid",
        ):
            try:
                pids.append(int(pid_file.read_text().split()[0]))
            except (FileNotFoundError, ValueError, IndexError):
                continue
        return [pid for pid in pids if pid_alive(pid)]

    def everything_started(self) -> list[int]:
        """Pids of every process this run started: web, worker, beat (with their pools) and
        the two servers."""
        children = [
            pid
            for name in ("web", "worker", "beat")
            for pid in self.group_pids(self.current_pid(name))
        ]
        return children + self.server_pids()

    def stop_by(self, *signals: int) -> float:
        """Send these signals to the whole process group (50 ms apart) and wait for `make run`
        to end; how long that took (s)."""
        assert self.process is not None
        started = time.monotonic()
        for index, signum in enumerate(signals):
            if index:
                time.sleep(0.05)
            self.signal_group(signum)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired as late:
            alive = subprocess.run(
                ["ps", "-o", "pid,stat,etime,args", "-g", str(self.process.pid)],
                capture_output=True,
                text=True,
            ).stdout
            raise AssertionError(
                f"make run still running 20 s after {signals}:\n{alive}\n{self.log()[-6000:]}"
            ) from late
        return time.monotonic() - started

    def signal_group(self, signum: int) -> None:
        """Signal `make run`'s process group, as a process manager or a terminal does."""
        assert self.process is not None
        os.killpg(self.process.pid, signum)

    def kill_everything(self) -> None:
        """Last resort on teardown: SIGKILL what this stack started, by recorded pid."""
        pids = [
            pid
            for name in ("web", "worker", "beat")
            for leader in self.child_pids(name)
            for pid in self.group_pids(leader)
        ]
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.services("svc_redis_stop; svc_pg_stop", check=False)
        if self.process is not None:
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_everything()

    # --- the dependencies -----------------------------------------------------------------------
    def services(self, commands: str, *, check: bool = True) -> subprocess.CompletedProcess:
        """Run svc_* functions of scripts/services.sh against this stack's servers."""
        return subprocess.run(
            ["bash", "-c", f"source scripts/services.sh && {commands}"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def stop_redis(self) -> None:
        self.services("svc_redis_stop")
        assert not port_open(self.redis_port)

    def start_redis(self) -> None:
        self.services("svc_redis_start || [[ $? == 2 ]]")

    def stop_postgres(self) -> None:
        self.services("svc_pg_stop")
        assert not port_open(self.pg_port)

    def start_postgres(self) -> None:
        self.services("svc_pg_start || [[ $? == 2 ]]")

    def manage(self, *args: str, timeout: float = 120) -> str:
        """A management command against this stack (e.g. `shell -c` to create staff-only rows)."""
        result = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=ROOT,
            env={
                **self.env,
                "DATABASE_URL": self.database_url,
                "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            },
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    # --- the database, for exact checks ---------------------------------------------------------
    @property
    def database_url(self) -> str:
        return f"postgres://chorus:chorus@127.0.0.1:{self.pg_port}/chorus"

    @contextmanager
    def db(self) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            yield conn

    def scalar(self, sql: str, params: Any = None) -> Any:
        with self.db() as conn:
            row = conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.db() as conn:
            return conn.execute(sql, params).fetchall()

    # --- rewards, for exactly-once checks -------------------------------------------------------
    def badge_rule(self, trigger: str, **fields: Any) -> int:
        """A badge rule made as staff would make it (no backfill needed: its users are new)."""
        assignments = ", ".join(f"{key}={value!r}" for key, value in fields.items())
        out = self.manage(
            "shell",
            "-c",
            "import uuid\n"
            "from django.utils import timezone\n"
            "from rewards.models import Badge, RewardRule\n"
            "badge = Badge.objects.create(slug='b-' + uuid.uuid4().hex[:10], name='chaos badge')\n"
            f"rule = RewardRule.objects.create(name='chaos', trigger={trigger!r}, badge=badge, "
            f"backfilled_at=timezone.now(){', ' + assignments if assignments else ''})\n"
            "print(rule.pk)\n",
        )
        return int(out.strip().splitlines()[-1])

    def grants(self, rule_id: int) -> list[tuple[int, int]]:
        """(user, grants) for the rule: exactly-once means every count is 1."""
        return self.rows(
            "SELECT user_id, count(*) FROM rewards_grant WHERE rule_id = %s "
            "GROUP BY user_id ORDER BY 1",
            [rule_id],
        )

    def waiting_on(self, table: str) -> bool:
        """A backend (a worker's task) is blocked on a lock while writing `table`."""
        return bool(
            self.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE %s",
                [f"%{table}%"],
            )
        )

    # --- HTTP -------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        timeout: float = 15,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"X-Device-Id": "resilience-test", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            received = {key.lower(): value for key, value in response.getheaders()}
            status = response.status
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(status, parsed, received, time.monotonic() - started)

    def fetch_text(self, port: int, path: str) -> str:
        """A plain GET on another port of the stack (the worker's metrics); "" if it fails."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.read().decode() if response.status == 200 else ""
        except OSError:
            return ""
        finally:
            conn.close()

    def register(self, prefix: str = "u") -> tuple[int, str]:
        """A new user through the API; (id, token)."""
        answer = self.request(
            "POST",
            "/api/v1/auth/register",
            {
                "username": f"{prefix}{uuid.uuid4().hex[:12]}",
                "password": "a-long-test-passphrase-1",
            },
        )
        assert answer.status == 201, answer.body
        return answer.body["id"], answer.body["token"]


class Load:
    """Writes from several users in threads until stopped, recording every answer.

    Bounded in time and count: each thread stops after `max_seconds` or `max_requests`.
    """

    def __init__(
        self,
        stack: Stack,
        actions: list[Callable[[int], tuple[str, str, Any, str, Any]]],
        *,
        max_seconds: float = 90,
        max_requests: int = 3000,
        pause: float = 0.02,
    ) -> None:
        self.stack = stack
        self.actions = actions
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.pause = pause
        self.stopped = threading.Event()
        self.results: list[tuple[float, str, Any, Answer | None, str]] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(index,), daemon=True)
            for index in range(len(actions))
        ]

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        for step in range(self.max_requests):
            if self.stopped.is_set() or time.monotonic() > deadline:
                return
            method, path, body, token, key = self.actions[index](step)
            at = time.monotonic()
            try:
                answer: Answer | None = self.stack.request(method, path, body, token=token)
                error = ""
            except Exception as exc:  # a refused connection or a timeout is a result too
                answer, error = None, f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.results.append((at, method + " " + path, key, answer, error))
            time.sleep(self.pause)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=30)
