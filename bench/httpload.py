"""A small HTTP/1.1 load generator on raw asyncio streams (loopback only, no dependencies).

Two drivers, both bounded by a request count *and* a wall-clock deadline:

- `closed_loop`: N connections, each sends its next request as soon as the previous answer is
  read (throughput at saturation);
- `open_loop`: requests are *scheduled* at a fixed rate, independent of how fast answers come
  back; latency is measured from the scheduled send time, so waiting for a free connection or
  for the server counts (no coordinated omission).

Connections are kept alive when the server allows it and reopened when it answers
`Connection: close` (gunicorn's sync worker closes after every response).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.cpu import CpuUsage

# (connection index, sequence number) -> request bytes; see `build_request`.
RequestFactory = Callable[[int, int], bytes]
# Called after each answer: (sequence number, status, body, send time, done time).
ResponseHook = Callable[[int, int, bytes, float, float], None]

# Requests per socket before the client reconnects (see Connection).
RECYCLE_AFTER = 25
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024


class HTTPError(Exception):
    """The server's answer could not be read (closed, malformed, too large, timed out)."""


def build_request(
    method: str,
    path: str,
    host: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class LoadStats:
    """What one driver run saw. Latencies are seconds."""

    label: str
    duration_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    late_starts: int = 0  # open loop: requests that could not start on schedule (>5 ms late)
    cpu: CpuUsage | None = None  # filled in by the caller that sampled the CPU around the run

    @property
    def ok(self) -> int:
        """Answers as asked: 2xx, or 3xx (the tutorial's vote redirects to its results, as wrk
        counts it); what each endpoint answered is kept in `statuses` and reported."""
        return sum(count for status, count in self.statuses.items() if 200 <= status < 400)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def rps(self) -> float:
        """Answers as asked (`ok`) per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def p(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        return percentile(self.latencies, q) * 1000.0

    def merge(self, other: LoadStats) -> None:
        self.duration_s += other.duration_s
        self.latencies.extend(other.latencies)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        for error, count in other.errors.items():
            self.errors[error] = self.errors.get(error, 0) + count
        self.reconnects += other.reconnects
        self.late_starts += other.late_starts
        if other.cpu is not None:
            if self.cpu is None:
                self.cpu = CpuUsage()
            self.cpu.add(other.cpu)

    def record(self, status: int, latency: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> str:
        non_2xx = {s: c for s, c in sorted(self.statuses.items()) if not 200 <= s < 300}
        parts = [
            f"{self.label}: {self.ok} ok in {self.duration_s:.1f}s = {self.rps:.0f} req/s",
            f"p50 {self.p(50):.1f} ms, p99 {self.p(99):.1f} ms",
        ]
        if non_2xx:
            parts.append(f"non-2xx {non_2xx}")
        if self.errors:
            parts.append(f"errors {self.errors}")
        return ", ".join(parts)


class Connection:
    """One HTTP/1.1 connection that reopens itself when the server closed it.

    With `max_uses`, the socket is closed after that many answers and the next request opens a
    new one. gunicorn's gthread workers keep an accepted connection for good, and a burst of
    connects often lands on one worker: a few fixed connections could leave a worker idle for a
    whole measurement. Reconnecting now and then lets the less busy worker pick up connections.
    """

    def __init__(self, host: str, port: int, timeout: float, max_uses: int | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_uses = max_uses
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0  # requests answered on the current socket

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )
        self.used = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes, bool]:
        """Send one request; returns (status, body, reconnected).

        A request written on a reused keep-alive socket that the server had already closed
        (EOF before any answer byte) is sent once more on a fresh socket.
        """
        reconnected = False
        for attempt in range(2):
            if self.writer is None:
                await self._open()
                reconnected = reconnected or attempt > 0
            reused = self.used > 0
            try:
                return (*await asyncio.wait_for(self._exchange(raw), self.timeout), reconnected)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.close()
                if not reused or attempt:
                    raise HTTPError(f"connection lost: {exc!r}") from exc
                reconnected = True
            except TimeoutError as exc:
                self.close()
                raise HTTPError("timeout") from exc
        raise HTTPError("unreachable")  # pragma: no cover

    async def _exchange(self, raw: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        await self.writer.drain()
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise HTTPError("header too large") from exc
        if len(head) > MAX_HEADER_BYTES:
            raise HTTPError("header too large")
        lines = head.decode("latin-1").split("\r\n")
        status_parts = lines[0].split(" ", 2)
        if len(status_parts) < 2 or not status_parts[0].startswith("HTTP/1."):
            raise HTTPError(f"bad status line {lines[0]!r}")
        status = int(status_parts[1])
        length: int | None = None
        chunked = False
        close = status_parts[0] == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection":
                close = value.lower() == "close"
        if chunked:
            body = await self._read_chunked()
        elif length is not None:
            if length > MAX_BODY_BYTES:
                raise HTTPError("body too large")
            body = await self.reader.readexactly(length) if length else b""
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no length: the body runs until the server closes
            body = await self.reader.read(MAX_BODY_BYTES)
            close = True
        self.used += 1
        if close or (self.max_uses is not None and self.used >= self.max_uses):
            self.close()
        return status, body

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        size_total = 0
        for _ in range(100_000):
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers are sent by our server
                return b"".join(parts)
            size_total += size
            if size_total > MAX_BODY_BYTES:
                raise HTTPError("body too large")
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        raise HTTPError("too many chunks")


async def _exchange(
    stats: LoadStats,
    conn: Connection,
    raw: bytes,
    seq: int,
    hook: ResponseHook | None,
    scheduled: float | None = None,
) -> None:
    """Send one request and record its answer (or error) in stats, then call the hook.

    The latency counts from `scheduled` when given (open loop: a late start is counted too),
    else from the send.
    """
    sent = time.perf_counter()
    if scheduled is not None and sent - scheduled > 0.005:
        stats.late_starts += 1
    try:
        status, body, reconnected = await conn.request(raw)
    except HTTPError as exc:
        stats.error(str(exc).split(":")[0])
        return
    done = time.perf_counter()
    stats.record(status, done - (sent if scheduled is None else scheduled))
    stats.reconnects += reconnected
    if hook is not None:
        hook(seq, status, body, sent, done)


async def closed_loop(
    *,
    label: str,
    host: str,
    port: int,
    factory: RequestFactory,
    connections: int,
    duration_s: float,
    max_requests: int,
    timeout_s: float = 10.0,
    hook: ResponseHook | None = None,
    recycle_after: int | None = RECYCLE_AFTER,
) -> LoadStats:
    """`connections` clients send back to back until the deadline or `max_requests` in total."""
    stats = LoadStats(label)
    counter = iter(range(max_requests))
    start = time.perf_counter()
    deadline = start + duration_s

    async def client(index: int) -> None:
        conn = Connection(host, port, timeout_s, recycle_after)
        try:
            for seq in counter:
                if time.perf_counter() >= deadline:
                    break
                await _exchange(stats, conn, factory(index, seq), seq, hook)
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(connections)))
    stats.duration_s = time.perf_counter() - start
    return stats


async def open_loop(
    *,
    label: str,
    host: str,
    port: int,
    factory: RequestFactory,
    rate: float,
    duration_s: float,
    pool_size: int,
    timeout_s: float = 10.0,
    hook: ResponseHook | None = None,
    max_requests: int | None = None,
    recycle_after: int | None = RECYCLE_AFTER,
) -> LoadStats:
    """Requests scheduled every 1/rate s for duration_s; latency counts from the schedule.

    At most `pool_size` requests are in flight; a request that finds no free connection waits
    for one, and that wait is part of its latency.
    """
    stats = LoadStats(label)
    count = max(1, int(rate * duration_s))
    if max_requests is not None:
        count = min(count, max_requests)
    pool: asyncio.Queue[tuple[int, Connection]] = asyncio.Queue()
    for index in range(pool_size):
        pool.put_nowait((index, Connection(host, port, timeout_s, recycle_after)))
    tasks: set[asyncio.Task[None]] = set()

    async def one(seq: int, scheduled: float) -> None:
        index, conn = await pool.get()
        try:
            await _exchange(stats, conn, factory(index, seq), seq, hook, scheduled=scheduled)
        finally:
            pool.put_nowait((index, conn))

    start = time.perf_counter()
    try:
        for seq in range(count):
            scheduled = start + seq / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(one(seq, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            # Bounded: every request has its own timeout; this is a last resort.
            await asyncio.wait(tasks, timeout=timeout_s * 2)
        # Throughput over the schedule (the offered load), not over the drain of the last ones.
        stats.duration_s = max(time.perf_counter() - start, count / rate)
    finally:
        for task in list(tasks):
            task.cancel()
        while not pool.empty():
            pool.get_nowait()[1].close()
    return stats
