"""The measured phases (import only after django.setup()).

Each phase returns a flat dict of figures (the JSON keys) and prints what it measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import connection

from bench import fixtures
from bench.cpu import cpu_between, cpu_sample
from bench.fixtures import BenchSticker, BenchUser
from bench.httpload import (
    Connection,
    HTTPError,
    LoadStats,
    RequestFactory,
    ResponseHook,
    build_request,
    closed_loop,
    open_loop,
    percentile,
)
from bench.plan import Plan, Server
from bench.stack import Proc, Processes, celery_argv, celery_ready, peak_rss_mb, say, wait_for
from polls.models import StickerResult
from polls.services.tallies import sticker_tally_refresh

BARE_PATH = "/api/v1/_bench/bare"
OPEN_PATH = "/api/v1/_bench/open"  # the bare GET without authentication


def _auth_headers(user: BenchUser) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {user.token}",
        "X-Device-Id": f"bench-device-{user.id}",
        "Accept": "application/json",
    }


def _settle(server: Server) -> None:
    if server.settle is not None:
        server.settle()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- vote writes -------------------------------------------------------------------------------
@dataclass
class VoteTraffic:
    """Request factories for vote POSTs and the bare POST.

    Connection i (of n) sends as the users i, i+n, i+2n, …, so no two requests for the same
    (user, sticker) are ever in flight together; each pair alternates between two options, so
    every POST does real work: the first is a new vote (201), each later one changes it (200).
    Every POST carries a fresh Idempotency-Key.
    """

    server: Server
    users: list[BenchUser]
    stickers: list[BenchSticker]
    run_id: str = field(default_factory=lambda: f"{os.getpid()}-{time.time_ns()}")
    cursors: dict[tuple[bool, int, int], int] = field(default_factory=dict)
    flips: dict[tuple[int, int], int] = field(default_factory=dict)
    sent: int = 0

    outcomes: dict[str, int] = field(default_factory=dict)

    def _pick(
        self, index: int, fanout: int, *, voting: bool
    ) -> tuple[BenchUser, BenchSticker, int]:
        owned = max(1, len(range(index, len(self.users), fanout)))
        cursor = (voting, fanout, index)
        k = self.cursors.get(cursor, 0)
        self.cursors[cursor] = k + 1
        user = self.users[(index + fanout * (k % owned)) % len(self.users)]
        sticker = self.stickers[(k // owned + index) % len(self.stickers)]
        flip = self.flips.get((user.id, sticker.id), 0)
        if voting:  # the bare endpoint stores nothing: it must not move the alternation
            self.flips[(user.id, sticker.id)] = flip + 1
        return user, sticker, sticker.option_ids[flip % 2]

    def check(self, seq: int, status: int, body: bytes, sent: float, done: float) -> None:
        """Counts what each vote POST did: new (201), changed (200) or, wrongly, nothing."""
        if status == 201:
            outcome = "new"
        elif status == 200:
            outcome = "unchanged" if b'"changed":false' in body else "changed"
        else:
            outcome = f"status {status}"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def _headers(self, user: BenchUser) -> dict[str, str]:
        self.sent += 1
        return {
            **_auth_headers(user),
            "Content-Type": "application/json",
            "Idempotency-Key": f"bench-{self.run_id}-{self.sent}",
        }

    def vote(self, fanout: int) -> RequestFactory:
        def factory(index: int, seq: int) -> bytes:
            user, sticker, option = self._pick(index, fanout, voting=True)
            body = json.dumps({"option_ids": [option]}).encode()
            return build_request(
                "POST",
                f"/api/v1/stickers/{sticker.id}/votes",
                self.server.host_header,
                self._headers(user),
                body,
            )

        return factory

    def bare(self, fanout: int) -> RequestFactory:
        def factory(index: int, seq: int) -> bytes:
            user, _sticker, option = self._pick(index, fanout, voting=False)
            body = json.dumps({"option_ids": [option]}).encode()
            return build_request(
                "POST", BARE_PATH, self.server.host_header, self._headers(user), body
            )

        return factory


def _metered(server: Server, run: Callable[[], LoadStats]) -> LoadStats:
    """Run a load and attach the CPU each component used meanwhile."""
    before = cpu_sample(server.cpu) if server.cpu else None
    stats = run()
    if server.cpu and before is not None:
        stats.cpu = cpu_between(before, cpu_sample(server.cpu))
    return stats


def _closed(
    server: Server,
    label: str,
    factory: RequestFactory,
    plan: Plan,
    seconds: float,
    hook: ResponseHook | None = None,
) -> LoadStats:
    def run() -> LoadStats:
        stats: LoadStats = _run(
            closed_loop(
                label=label,
                host=server.host,
                port=server.port,
                factory=factory,
                connections=plan.connections,
                duration_s=seconds,
                max_requests=int(seconds * 20_000),
                hook=hook,
            )
        )
        return stats

    return _metered(server, run)


def _open(
    server: Server,
    label: str,
    factory: RequestFactory,
    plan: Plan,
    rate: float,
    seconds: float,
    hook: ResponseHook | None = None,
    max_requests: int | None = None,
) -> LoadStats:
    def run() -> LoadStats:
        stats: LoadStats = _run(
            open_loop(
                label=label,
                host=server.host,
                port=server.port,
                factory=factory,
                rate=rate,
                duration_s=seconds,
                pool_size=plan.open_loop_pool,
                hook=hook,
                max_requests=max_requests,
            )
        )
        return stats

    return _metered(server, run)


Side = tuple[str, RequestFactory, ResponseHook | None]


@dataclass
class Alternation:
    """Both sides of an alternating comparison: totals over all rounds, and each round's rps."""

    a: LoadStats
    b: LoadStats
    rounds: list[tuple[float, float]]  # (a rps, b rps) per round

    def round_ratios(self) -> list[float]:
        """b / a of each round: the spread shows how much the machine moved meanwhile."""
        return [b / a for a, b in self.rounds if a > 0]


def _alternating(server: Server, plan: Plan, pair: tuple[Side, Side]) -> Alternation:
    """Warm both up, then alternate them in short rounds so drift in the machine hits both."""
    side_a, side_b = pair
    for label, factory, hook in pair:
        _closed(server, f"warm-up {label}", factory, plan, plan.warmup_s, hook)
    totals = {side_a[0]: LoadStats(side_a[0]), side_b[0]: LoadStats(side_b[0])}
    rounds: list[tuple[float, float]] = []
    for round_no in range(plan.rounds):
        # ABBA order: neither side always runs right after the other.
        order = (side_a, side_b) if round_no % 2 == 0 else (side_b, side_a)
        rps: dict[str, float] = {}
        for label, factory, hook in order:
            stats = _closed(server, label, factory, plan, plan.round_s, hook)
            busy = ""
            if stats.cpu is not None and stats.cpu.machine_total_s:
                share = stats.cpu.machine_busy_s / stats.cpu.machine_total_s
                busy = f", machine {100 * share:.0f}% busy"
            say(f"  round {round_no + 1}: {stats.summary()}{busy}")
            totals[label].merge(stats)
            rps[label] = stats.rps
        rounds.append((rps[side_a[0]], rps[side_b[0]]))
    return Alternation(totals[side_a[0]], totals[side_b[0]], rounds)


def _spread(ratios: list[float]) -> dict[str, float] | None:
    if not ratios:
        return None
    return {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)}


def phase_writes(
    server: Server, plan: Plan, users: list[BenchUser], stickers: list[BenchSticker]
) -> dict[str, Any]:
    say(
        f"Vote writes: POST /stickers/{{id}}/votes vs POST {BARE_PATH}, "
        f"{plan.connections} connections, {plan.rounds} x {plan.round_s:.0f}s each, alternating"
    )
    traffic = VoteTraffic(server, users, stickers)
    writes = _alternating(
        server,
        plan,
        (
            ("bare POST", traffic.bare(plan.connections), None),
            ("vote POST", traffic.vote(plan.connections), traffic.check),
        ),
    )
    bare, vote = writes.a, writes.b
    _say_total(bare)
    _say_total(vote)
    say(f"  what the vote POSTs did so far (warm-up included): {traffic.outcomes}")
    _settle(server)
    half = max(1.0, vote.rps / 2)
    say(
        f"Vote latency, open loop at half the vote throughput: {half:.0f} req/s, "
        f"{plan.open_loop_s:.0f}s"
    )
    vote_half = _open(
        server,
        "vote POST @half",
        traffic.vote(plan.open_loop_pool),
        plan,
        half,
        plan.open_loop_s,
        hook=traffic.check,
    )
    say(f"  {vote_half.summary()}")
    if vote_half.cpu is not None:
        say(f"    {vote_half.cpu.describe(vote_half.total)}")
    bare_half = _open(
        server,
        "bare POST @same rate",
        traffic.bare(plan.open_loop_pool),
        plan,
        half,
        plan.open_loop_s,
    )
    say(f"  {bare_half.summary()}")
    tutorial_stats, full_stats, tutorial_rounds = _vote_vs_tutorial(server, plan, traffic)
    return {
        "vote_vs_tutorial_ratio": (
            full_stats.rps / tutorial_stats.rps if tutorial_stats.rps else None
        ),
        "vote_vs_tutorial_round_ratios": tutorial_rounds,
        "tutorial_vote_rps": tutorial_stats.rps,
        "tutorial_vote_p99_ms": tutorial_stats.p(99),
        "tutorial_vote_statuses": _statuses(tutorial_stats),
        "tutorial_vote_server_cpu_ms": _server_cpu_ms(tutorial_stats),
        "full_vote_rps": full_stats.rps,
        "full_vote_server_cpu_ms": _server_cpu_ms(full_stats),
        "vote_write_ratio": vote.rps / bare.rps if bare.rps else None,
        "vote_write_round_ratios": _spread(writes.round_ratios()),
        "vote_write_rps": vote.rps,
        "bare_write_rps": bare.rps,
        "vote_p50_ms": vote.p(50),
        "vote_p99_ms": vote.p(99),
        "bare_write_p50_ms": bare.p(50),
        "bare_write_p99_ms": bare.p(99),
        "vote_server_cpu_ms": _server_cpu_ms(vote),
        "bare_write_server_cpu_ms": _server_cpu_ms(bare),
        "vote_write_cpu_ratio": _cpu_ratio(vote, bare),
        "vote_cpu_ms_per_request": _cpu(vote),
        "bare_write_cpu_ms_per_request": _cpu(bare),
        "vote_statuses": _statuses(vote),
        "vote_outcomes": traffic.outcomes,
        "bare_write_statuses": _statuses(bare),
        "half_rate_rps": half,
        "vote_p50_ms_at_half_rate": vote_half.p(50),
        "vote_p99_ms_at_half_rate": vote_half.p(99),
        "vote_half_rate_achieved_rps": vote_half.rps,
        "vote_half_rate_statuses": _statuses(vote_half),
        "bare_write_p50_ms_at_half_rate": bare_half.p(50),
        "bare_write_p99_ms_at_half_rate": bare_half.p(99),
    }


def _vote_vs_tutorial(
    server: Server, plan: Plan, traffic: VoteTraffic
) -> tuple[LoadStats, LoadStats, dict[str, float] | None]:
    """The full vote against the Django tutorial's (polls/api/bench.py: one row's F("votes") + 1,
    no authentication), alternating on the same server: (tutorial, full vote, per round)."""
    creator, video_id = fixtures.creator_video("bench-tutorial")
    question = fixtures.poll_stickers_create(creator, video_id, 1)[0]
    sticker_tally_refresh(sticker_id=question.id)
    form = f"choice={question.option_ids[0]}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    path = f"/api/v1/_bench/tutorial/{question.id}/vote"

    def tutorial(index: int, seq: int) -> bytes:
        return build_request("POST", path, server.host_header, headers, form)

    say(
        f"Full vote vs the tutorial's vote (POST {path}: F('votes') + 1, no authentication), "
        f"{plan.connections} connections, {plan.rounds} x {plan.round_s:.0f}s each, alternating"
    )
    pair = _alternating(
        server,
        plan,
        (
            ("tutorial vote POST", tutorial, None),
            ("vote POST", traffic.vote(plan.connections), traffic.check),
        ),
    )
    _say_total(pair.a)
    _say_total(pair.b)
    return pair.a, pair.b, _spread(pair.round_ratios())


def _say_total(stats: LoadStats) -> None:
    say(f"  total {stats.summary()}")
    if stats.cpu is not None:
        say(f"    {stats.cpu.describe(stats.total)}")


def _cpu(stats: LoadStats) -> dict[str, float] | None:
    """CPU milliseconds per request by component, and the share of the machine used by others."""
    if stats.cpu is None:
        return None
    figures = stats.cpu.per_request_ms(stats.total)
    figures["other_processes_share"] = stats.cpu.other_share()
    return figures


# Not the server's own work: the load generator, sums, and the server-wide short-lived backends
# (they include other clients' connections on a shared machine; reported, not attributed).
NOT_SERVER = ("loadgen", "total", "other_processes_share", "postgres_short_lived")


def _server_cpu_ms(stats: LoadStats) -> float | None:
    """CPU ms per request spent by the server's own processes (see NOT_SERVER)."""
    per = _cpu(stats)
    if not per:
        return None
    return sum(value for name, value in per.items() if name not in NOT_SERVER)


def _cpu_ratio(full: LoadStats, bare: LoadStats) -> float | None:
    """bare CPU cost / full CPU cost per request: the throughput ratio a CPU-bound server would
    reach if nothing else ran on the machine (a cross-check that other load does not move)."""
    full_ms, bare_ms = _server_cpu_ms(full), _server_cpu_ms(bare)
    return bare_ms / full_ms if full_ms and bare_ms else None


def _statuses(stats: LoadStats) -> dict[str, int]:
    found = {str(status): count for status, count in sorted(stats.statuses.items())}
    found.update({f"error:{kind}": count for kind, count in stats.errors.items()})
    return found


# --- results reads -----------------------------------------------------------------------------
def phase_reads(
    server: Server, plan: Plan, users: list[BenchUser], stickers: list[BenchSticker]
) -> dict[str, Any]:
    say(
        f"Results reads: GET /stickers/{{id}}/results vs GET {BARE_PATH}, "
        f"{plan.connections} connections, {plan.rounds} x {plan.round_s:.0f}s each, alternating"
    )
    # Live tallies as the tallies worker leaves them (also when this phase runs alone).
    _settle(server)
    for sticker in stickers:
        sticker_tally_refresh(sticker_id=sticker.id)
    cursors: dict[int, int] = {}

    def pick(index: int) -> tuple[BenchUser, BenchSticker]:
        k = cursors.get(index, 0)
        cursors[index] = k + 1
        user = users[(index + plan.connections * k) % len(users)]
        return user, stickers[(index + k) % len(stickers)]

    def results(index: int, seq: int) -> bytes:
        user, sticker = pick(index)
        return build_request(
            "GET",
            f"/api/v1/stickers/{sticker.id}/results",
            server.host_header,
            _auth_headers(user),
        )

    def bare(index: int, seq: int) -> bytes:
        user, _sticker = pick(index)
        return build_request("GET", BARE_PATH, server.host_header, _auth_headers(user))

    reads = _alternating(server, plan, (("bare GET", bare, None), ("results GET", results, None)))
    bare_stats, results_stats = reads.a, reads.b
    _say_total(bare_stats)
    _say_total(results_stats)

    def open_get(index: int, seq: int) -> bytes:
        return build_request("GET", OPEN_PATH, server.host_header, {"Accept": "application/json"})

    say(
        f"Authentication's cost: GET {BARE_PATH} (device token) vs GET {OPEN_PATH} (none), "
        f"{plan.connections} connections, {plan.rounds} x {plan.round_s:.0f}s each, alternating"
    )
    auth = _alternating(
        server, plan, (("open GET", open_get, None), ("bare GET (authenticated)", bare, None))
    )
    _say_total(auth.a)
    _say_total(auth.b)
    return {
        "auth_overhead_ratio": auth.b.rps / auth.a.rps if auth.a.rps else None,
        "auth_overhead_round_ratios": _spread(auth.round_ratios()),
        "open_get_rps": auth.a.rps,
        "authenticated_get_rps": auth.b.rps,
        "open_get_server_cpu_ms": _server_cpu_ms(auth.a),
        "authenticated_get_server_cpu_ms": _server_cpu_ms(auth.b),
        "open_get_statuses": _statuses(auth.a),
        "results_read_ratio": results_stats.rps / bare_stats.rps if bare_stats.rps else None,
        "results_read_round_ratios": _spread(reads.round_ratios()),
        "results_read_rps": results_stats.rps,
        "bare_read_rps": bare_stats.rps,
        "results_p50_ms": results_stats.p(50),
        "results_p99_ms": results_stats.p(99),
        "bare_read_p50_ms": bare_stats.p(50),
        "bare_read_p99_ms": bare_stats.p(99),
        "results_server_cpu_ms": _server_cpu_ms(results_stats),
        "bare_read_server_cpu_ms": _server_cpu_ms(bare_stats),
        "results_read_cpu_ratio": _cpu_ratio(results_stats, bare_stats),
        "results_cpu_ms_per_request": _cpu(results_stats),
        "bare_read_cpu_ms_per_request": _cpu(bare_stats),
        "results_statuses": _statuses(results_stats),
        "bare_read_statuses": _statuses(bare_stats),
    }


# --- live lag ----------------------------------------------------------------------------------
@dataclass
class LagLog:
    commits: list[float] = field(default_factory=list)  # when each 2xx vote answer was read
    polls: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, read, total)
    poll_errors: int = 0
    load_done: bool = False


def lag_samples(
    commits: list[float], polls: list[tuple[float, float, int]], *, at_read: bool = False
) -> list[float]:
    """How far each results read trailed the votes committed before it.

    commits: when each vote's 2xx answer arrived (a 2xx means committed); polls: (sent, read,
    total_votes). With the commits sorted, a read sent at t showing n votes misses vote n+1 if
    that vote was committed before t: the read is then t - commit[n] behind; otherwise 0.
    The server read its cache somewhere between sending and reading the answer, so t = sent
    gives the lag as the method defines it (a lower bound), t = read (at_read) an upper bound
    that also counts the read's own latency.
    """
    ordered = sorted(commits)
    samples: list[float] = []
    for sent, read, total in polls:
        moment = read if at_read else sent
        if total < len(ordered) and ordered[total] < moment:
            samples.append(moment - ordered[total])
        else:
            samples.append(0.0)
    return samples


def _lag_attempt(
    server: Server,
    plan: Plan,
    voters: list[BenchUser],
    reader: BenchUser,
    sticker: BenchSticker,
    rate: float,
) -> tuple[LoadStats, LagLog]:
    log = LagLog()
    counter = iter(range(len(voters)))
    results_path = f"/api/v1/stickers/{sticker.id}/results"
    count = min(len(voters), int(rate * plan.lag_s))

    def factory(index: int, seq: int) -> bytes:
        voter = voters[next(counter)]
        body = json.dumps({"option_ids": [sticker.option_ids[seq % 2]]}).encode()
        return build_request(
            "POST",
            f"/api/v1/stickers/{sticker.id}/votes",
            server.host_header,
            {
                **_auth_headers(voter),
                "Content-Type": "application/json",
                "Idempotency-Key": f"bench-lag-{os.getpid()}-{sticker.id}-{seq}",
            },
            body,
        )

    def hook(seq: int, status: int, body: bytes, sent: float, done: float) -> None:
        if status == 201:
            log.commits.append(done)

    async def poll_once(conn: Connection, raw: bytes) -> None:
        sent = time.perf_counter()
        try:
            status, body, _ = await conn.request(raw)
        except HTTPError:
            log.poll_errors += 1
            return
        if status == 200:
            log.polls.append((sent, time.perf_counter(), int(json.loads(body)["total_votes"])))
        else:
            log.poll_errors += 1

    async def poller() -> None:
        # Polls are scheduled every interval (open loop), each on a free connection of a small
        # pool, so a slow answer does not thin out the samples.
        raw = build_request("GET", results_path, server.host_header, _auth_headers(reader))
        pool: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(8):
            pool.put_nowait(Connection(server.host, server.port, 10.0))
        pending: set[asyncio.Task[None]] = set()

        async def one() -> None:
            conn = await pool.get()
            try:
                await poll_once(conn, raw)
            finally:
                pool.put_nowait(conn)

        started = time.perf_counter()
        hard_stop = started + plan.lag_s + plan.lag_tail_s + 30
        load_done_at: float | None = None
        try:
            for tick_no in range(int((hard_stop - started) / plan.lag_poll_interval_s) + 1):
                tick = started + tick_no * plan.lag_poll_interval_s
                await asyncio.sleep(max(0.0, tick - time.perf_counter()))
                if time.perf_counter() >= hard_stop:
                    break
                if log.load_done:
                    load_done_at = load_done_at or tick
                    caught_up = bool(log.polls) and log.polls[-1][2] >= len(log.commits)
                    if caught_up or tick - load_done_at > plan.lag_tail_s:
                        break
                task = asyncio.ensure_future(one())
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending, timeout=15)
        finally:
            for task in list(pending):
                task.cancel()
            while not pool.empty():
                pool.get_nowait().close()

    async def load() -> LoadStats:
        try:
            return await open_loop(
                label="lag vote POST",
                host=server.host,
                port=server.port,
                factory=factory,
                rate=rate,
                duration_s=plan.lag_s,
                pool_size=plan.open_loop_pool,
                hook=hook,
                max_requests=count,
            )
        finally:
            log.load_done = True

    async def both() -> LoadStats:
        stats, _ = await asyncio.gather(load(), poller())
        return stats

    stats: LoadStats = _metered(server, lambda: _run(both()))
    return stats, log


def _sustained(stats: LoadStats, rate: float, log: LagLog, plan: Plan) -> bool:
    """Did the server keep up with the offered vote rate (else the rate was not sustained)?"""
    expected_polls = plan.lag_s / plan.lag_poll_interval_s
    return (
        stats.rps >= 0.9 * rate
        and stats.p(50) < 500
        and len(log.polls) >= 0.8 * expected_polls
        and not stats.errors
    )


def phase_lag(
    server: Server, plan: Plan, creator_video: tuple[Any, int], capacity: float
) -> dict[str, Any]:
    creator, video_id = creator_video
    rate = max(5.0, plan.lag_rate_fraction * capacity)
    for attempt in (1, 2):
        count = int(rate * plan.lag_s)
        voters = fixtures.users_create(f"bench-l{attempt}-", count)
        reader = fixtures.users_create(f"bench-r{attempt}-", 1)[0]
        sticker = fixtures.poll_stickers_create(creator, video_id, 1)[0]
        say(
            f"Live lag: {count} new votes at {rate:.0f}/s (open loop, distinct voters, "
            f"{100 * rate / capacity:.0f}% of the vote capacity) on one sticker, results "
            f"polled every {plan.lag_poll_interval_s * 1000:.0f} ms"
        )
        _settle(server)
        stats, log = _lag_attempt(server, plan, voters, reader, sticker, rate)
        say(f"  {stats.summary()}")
        if stats.cpu is not None:
            say(f"    {stats.cpu.describe(stats.total)} (incl. the results reads)")
        sustained = _sustained(stats, rate, log, plan)
        if sustained or attempt == 2:
            break
        say("  the server did not sustain this rate (machine busy?): once more at half the rate")
        rate /= 2
    samples = lag_samples(log.commits, log.polls)
    upper = lag_samples(log.commits, log.polls, at_read=True)
    poll_ms = [1000 * (read - sent) for sent, read, _total in log.polls]
    last_total = log.polls[-1][2] if log.polls else 0
    caught_up_after = None
    if log.commits and log.polls and last_total >= len(log.commits):
        last_commit = max(log.commits)
        first_full = next(
            (sent for sent, _read, total in log.polls if total >= len(log.commits)), None
        )
        if first_full is not None:
            caught_up_after = max(0.0, first_full - last_commit)
    say(
        f"  {len(log.polls)} results reads (p50 {percentile(poll_ms, 50):.0f} ms, p99 "
        f"{percentile(poll_ms, 99):.0f} ms); lag max {max(samples, default=0):.3f}s, "
        f"p95 {percentile(samples, 95):.3f}s (counting the read's own time: max "
        f"{max(upper, default=0):.3f}s); {len(log.commits)} votes committed, the last read "
        f"shows {last_total}" + ("" if sustained else "; RATE NOT SUSTAINED")
    )
    return {
        "live_lag_s": max(samples, default=None),
        "live_lag_p95_s": percentile(samples, 95) if samples else None,
        "live_lag_p50_s": percentile(samples, 50) if samples else None,
        "live_lag_upper_s": max(upper, default=None),
        "live_lag_upper_p95_s": percentile(upper, 95) if upper else None,
        "live_lag_vote_rate": rate,
        "live_lag_rate_fraction": rate / capacity if capacity else None,
        "live_lag_rate_sustained": sustained,
        "live_lag_votes_committed": len(log.commits),
        "live_lag_vote_achieved_rps": stats.rps,
        "live_lag_vote_p50_ms": stats.p(50),
        "live_lag_vote_p99_ms": stats.p(99),
        "live_lag_polls": len(log.polls),
        "live_lag_poll_p50_ms": percentile(poll_ms, 50) if poll_ms else None,
        "live_lag_poll_p99_ms": percentile(poll_ms, 99) if poll_ms else None,
        "live_lag_poll_errors": log.poll_errors,
        "live_lag_final_total": last_total,
        "live_lag_caught_up_after_s": caught_up_after,
        "live_lag_vote_statuses": _statuses(stats),
        "live_lag_cpu_ms_per_vote": _cpu(stats),
    }


def vote_capacity_probe(
    server: Server, plan: Plan, users: list[BenchUser], stickers: list[BenchSticker]
) -> float:
    """A short closed-loop vote run, for the lag rate when the writes phase did not run."""
    traffic = VoteTraffic(server, users, stickers)
    _closed(server, "probe warm-up", traffic.vote(plan.connections), plan, plan.warmup_s)
    stats = _closed(server, "vote probe", traffic.vote(plan.connections), plan, 3.0)
    say(f"  capacity probe: {stats.summary()}")
    return stats.rps


# --- finalize 1M -------------------------------------------------------------------------------
GROUP_BY_SQL = """
    SELECT choice, count(*)
    FROM polls_vote v CROSS JOIN LATERAL unnest(v.option_ids) AS choice
    WHERE v.sticker_id = %s AND v.counted
    GROUP BY 1
"""


def _group_by(database_url: str, sticker_id: int) -> tuple[float, dict[int, int]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        started = time.perf_counter()
        rows = conn.execute(GROUP_BY_SQL, [sticker_id]).fetchall()
        elapsed = time.perf_counter() - started
    return elapsed, {int(option): int(votes) for option, votes in rows}


def phase_finalize(
    plan: Plan,
    processes: Processes,
    creator_video: tuple[Any, int],
    database_url: str,
) -> dict[str, Any]:
    from polls.tasks import finalize_sticker

    creator, video_id = creator_video
    votes = plan.finalize_votes
    say(f"Finalize: a poll sticker with {votes:,} votes (set-based INSERT … SELECT)")
    sticker = fixtures.poll_stickers_create(creator, video_id, 1, options=4)[0]
    fill = fixtures.million_fill(sticker, votes)
    say(
        "  filled: users {users_insert_s:.1f}s, votes {votes_insert_s:.1f}s, "
        "VACUUM ANALYZE {vacuum_analyze_s:.1f}s".format(**fill)
    )
    fixtures.sticker_set_closed(sticker.id)

    # (a) the plain GROUP BY: one warm-up (same buffer cache for both sides), then the median.
    _group_by(database_url, sticker.id)
    group_times = []
    expected: dict[int, int] = {}
    for _ in range(3):
        elapsed, expected = _group_by(database_url, sticker.id)
        group_times.append(elapsed)
    group_by_s = statistics.median(group_times)
    with psycopg.connect(database_url, autocommit=True) as conn:
        plan_rows = conn.execute("EXPLAIN " + GROUP_BY_SQL, [sticker.id]).fetchall()
        # For context: the same query without parallel workers (INSERT … SELECT, as finalize
        # runs it, cannot use them).
        conn.execute("SET max_parallel_workers_per_gather = 0")
        serial_times = []
        for _ in range(3):
            started = time.perf_counter()
            conn.execute(GROUP_BY_SQL, [sticker.id]).fetchall()
            serial_times.append(time.perf_counter() - started)
    group_by_plan = [str(row[0]) for row in plan_rows]
    group_by_serial_s = statistics.median(serial_times)
    runs = ", ".join(f"{t:.3f}s" for t in group_times)
    say(
        f"  plain GROUP BY: {runs} -> median {group_by_s:.3f}s "
        f"(without parallel workers: {group_by_serial_s:.3f}s)"
    )

    # (b) finalize_sticker run by a real solo worker through the broker.
    worker = processes.start("celery-finalize", celery_argv("bench-finalize", "closing"))
    finalize_times: list[float] = []
    peak_mb = 0.0
    try:
        wait_for(lambda: celery_ready(worker), "ready", worker, timeout=60)
        idle_mb = peak_rss_mb(worker.pid)
        for run in range(plan.finalize_runs):
            if run:
                fixtures.sticker_set_closed(sticker.id)
            connection.close()  # do not hold a snapshot or locks across the run
            started = time.perf_counter()
            finalize_sticker.apply_async((sticker.id,), queue="closing")
            _wait_final(sticker.id, worker, plan.finalize_timeout_s)
            elapsed = time.perf_counter() - started
            finalize_times.append(elapsed)
            peak_mb = max(peak_mb, peak_rss_mb(worker.pid))
            say(f"  finalize run {run + 1}: {elapsed:.3f}s, worker peak RSS {peak_mb:.0f} MB")
    finally:
        processes.stop(worker)
    finalize_s = statistics.median(finalize_times)
    stored = dict(
        StickerResult.objects.filter(sticker_id=sticker.id).values_list("option_id", "votes")
    )
    exact = {k: v for k, v in stored.items() if v} == expected
    say(f"  final result equals the GROUP BY: {exact}")
    return {
        "finalize_1m_ratio": finalize_s / group_by_s if group_by_s else None,
        "finalize_1m_s": finalize_s,
        "group_by_1m_s": group_by_s,
        "finalize_worker_peak_mb": peak_mb,
        "finalize_worker_idle_mb": idle_mb,
        "finalize_votes": votes,
        "finalize_runs_s": finalize_times,
        "group_by_runs_s": group_times,
        "group_by_plan": group_by_plan,
        "group_by_1m_serial_s": group_by_serial_s,
        "finalize_1m_ratio_vs_serial": (
            finalize_s / group_by_serial_s if group_by_serial_s else None
        ),
        "finalize_result_exact": exact,
        "finalize_fill_s": fill,
    }


def _wait_final(sticker_id: int, worker: Proc, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if fixtures.sticker_state(sticker_id) == "final":
            return
        if worker.popen.poll() is not None:
            raise RuntimeError(f"finalize worker exited:\n{worker.log_tail()}")
        time.sleep(0.01)
    raise RuntimeError(f"sticker {sticker_id} not final within {timeout:.0f}s")
