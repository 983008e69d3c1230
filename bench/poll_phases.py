"""The polls' phases (import only after django.setup()): `writes` (votes vs the bare POST, at
half rate, vs the tutorial's vote), `reads` (results vs the bare GET, and authentication's
cost), `lag` (live results behind committed votes) and `finalize` (1,000,000 votes).

Each phase returns a flat dict of figures (the JSON keys) and prints what it measured; its row
in bench.phases names what it needs and its targets.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import connection

from bench import fixtures
from bench.cpu import peak_rss_mb
from bench.fixtures import BenchSticker, BenchUser
from bench.httpload import (
    Connection,
    LoadStats,
    RequestFactory,
    build_request,
    percentile,
)
from bench.measure import (
    BARE_PATH,
    OPEN_PATH,
    Alternation,
    LagLog,
    PollSchedule,
    alternating,
    auth_headers,
    closed_load,
    cpu_per_request,
    cpu_ratio,
    median_after_warmup,
    open_load,
    percentile_or_none,
    rate_sustained,
    say_load,
    seconds,
    server_cpu_ms,
    statuses,
)
from bench.plan import Plan, Server
from bench.stack import Proc, Processes, celery_argv, celery_ready, say, wait_for
from polls.models import StickerResult
from polls.services.tallies import sticker_tally_refresh


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
            **auth_headers(user),
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


def phase_writes(
    server: Server, plan: Plan, users: list[BenchUser], stickers: list[BenchSticker]
) -> dict[str, Any]:
    say(f"Vote writes: POST /stickers/{{id}}/votes vs POST {BARE_PATH}, " + plan.alternation)
    traffic = VoteTraffic(server, users, stickers)
    writes = alternating(
        server,
        plan,
        (
            ("bare POST", traffic.bare(plan.connections), None),
            ("vote POST", traffic.vote(plan.connections), traffic.check),
        ),
    )
    bare, vote = writes.a, writes.b
    writes.say_totals()
    say(f"  what the vote POSTs did so far (warm-up included): {traffic.outcomes}")
    server.settle()
    half = max(1.0, vote.rps / 2)
    say(
        f"Vote latency, open loop at half the vote throughput: {half:.0f} req/s, "
        f"{plan.open_loop_s:.0f}s"
    )
    vote_half = open_load(
        server,
        plan,
        "vote POST @half",
        traffic.vote(plan.open_loop_pool),
        half,
        plan.open_loop_s,
        hook=traffic.check,
    )
    say_load(vote_half)
    bare_half = open_load(
        server,
        plan,
        "bare POST @same rate",
        traffic.bare(plan.open_loop_pool),
        half,
        plan.open_loop_s,
    )
    say(f"  {bare_half.summary()}")
    tutorial = _vote_vs_tutorial(server, plan, traffic)
    tutorial_stats, full_stats = tutorial.a, tutorial.b
    return {
        "vote_vs_tutorial_ratio": tutorial.ratio,
        "vote_vs_tutorial_round_ratios": tutorial.round_spread(),
        "tutorial_vote_rps": tutorial_stats.rps,
        "tutorial_vote_p99_ms": tutorial_stats.p(99),
        "tutorial_vote_statuses": statuses(tutorial_stats),
        "tutorial_vote_server_cpu_ms": server_cpu_ms(tutorial_stats),
        "full_vote_rps": full_stats.rps,
        "full_vote_server_cpu_ms": server_cpu_ms(full_stats),
        "vote_write_ratio": writes.ratio,
        "vote_write_round_ratios": writes.round_spread(),
        "vote_write_rps": vote.rps,
        "bare_write_rps": bare.rps,
        "vote_p50_ms": vote.p(50),
        "vote_p99_ms": vote.p(99),
        "bare_write_p50_ms": bare.p(50),
        "bare_write_p99_ms": bare.p(99),
        "vote_server_cpu_ms": server_cpu_ms(vote),
        "bare_write_server_cpu_ms": server_cpu_ms(bare),
        "vote_write_cpu_ratio": cpu_ratio(vote, bare),
        "vote_cpu_ms_per_request": cpu_per_request(vote),
        "bare_write_cpu_ms_per_request": cpu_per_request(bare),
        "vote_statuses": statuses(vote),
        "vote_outcomes": traffic.outcomes,
        "bare_write_statuses": statuses(bare),
        "half_rate_rps": half,
        "vote_p50_ms_at_half_rate": vote_half.p(50),
        "vote_p99_ms_at_half_rate": vote_half.p(99),
        "vote_half_rate_achieved_rps": vote_half.rps,
        "vote_half_rate_statuses": statuses(vote_half),
        "bare_write_p50_ms_at_half_rate": bare_half.p(50),
        "bare_write_p99_ms_at_half_rate": bare_half.p(99),
    }


def _vote_vs_tutorial(server: Server, plan: Plan, traffic: VoteTraffic) -> Alternation:
    """The full vote against the Django tutorial's (polls/api/bench.py: one row's F("votes") + 1,
    no authentication), alternating on the same server: a is the tutorial, b the full vote."""
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
        + plan.alternation
    )
    pair = alternating(
        server,
        plan,
        (
            ("tutorial vote POST", tutorial, None),
            ("vote POST", traffic.vote(plan.connections), traffic.check),
        ),
    )
    pair.say_totals()
    return pair


# --- results reads -----------------------------------------------------------------------------
def phase_reads(
    server: Server, plan: Plan, users: list[BenchUser], stickers: list[BenchSticker]
) -> dict[str, Any]:
    say(f"Results reads: GET /stickers/{{id}}/results vs GET {BARE_PATH}, " + plan.alternation)
    # Live tallies as the tallies worker leaves them (also when this phase runs alone).
    server.settle()
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
            auth_headers(user),
        )

    def bare(index: int, seq: int) -> bytes:
        user, _sticker = pick(index)
        return build_request("GET", BARE_PATH, server.host_header, auth_headers(user))

    reads = alternating(server, plan, (("bare GET", bare, None), ("results GET", results, None)))
    bare_stats, results_stats = reads.a, reads.b
    reads.say_totals()

    def open_get(index: int, seq: int) -> bytes:
        return build_request("GET", OPEN_PATH, server.host_header, {"Accept": "application/json"})

    say(
        f"Authentication's cost: GET {BARE_PATH} (device token) vs GET {OPEN_PATH} (none), "
        + plan.alternation
    )
    auth = alternating(
        server, plan, (("open GET", open_get, None), ("bare GET (authenticated)", bare, None))
    )
    auth.say_totals()
    return {
        "auth_overhead_ratio": auth.ratio,
        "auth_overhead_round_ratios": auth.round_spread(),
        "open_get_rps": auth.a.rps,
        "authenticated_get_rps": auth.b.rps,
        "open_get_server_cpu_ms": server_cpu_ms(auth.a),
        "authenticated_get_server_cpu_ms": server_cpu_ms(auth.b),
        "open_get_statuses": statuses(auth.a),
        "results_read_ratio": reads.ratio,
        "results_read_round_ratios": reads.round_spread(),
        "results_read_rps": results_stats.rps,
        "bare_read_rps": bare_stats.rps,
        "results_p50_ms": results_stats.p(50),
        "results_p99_ms": results_stats.p(99),
        "bare_read_p50_ms": bare_stats.p(50),
        "bare_read_p99_ms": bare_stats.p(99),
        "results_server_cpu_ms": server_cpu_ms(results_stats),
        "bare_read_server_cpu_ms": server_cpu_ms(bare_stats),
        "results_read_cpu_ratio": cpu_ratio(results_stats, bare_stats),
        "results_cpu_ms_per_request": cpu_per_request(results_stats),
        "bare_read_cpu_ms_per_request": cpu_per_request(bare_stats),
        "results_statuses": statuses(results_stats),
        "bare_read_statuses": statuses(bare_stats),
    }


# --- live lag ----------------------------------------------------------------------------------
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
                **auth_headers(voter),
                "Content-Type": "application/json",
                "Idempotency-Key": f"bench-lag-{os.getpid()}-{sticker.id}-{seq}",
            },
            body,
        )

    def hook(seq: int, status: int, body: bytes, sent: float, done: float) -> None:
        if status == 201:
            log.commits.append(done)

    async def poller() -> None:
        # Polls are scheduled every interval (open loop), each on a free connection of a small
        # pool, so a slow answer does not thin out the samples.
        raw = build_request("GET", results_path, server.host_header, auth_headers(reader))
        pool: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(8):
            pool.put_nowait(Connection(server.host, server.port, 10.0))
        pending: set[asyncio.Task[None]] = set()

        async def one() -> None:
            conn = await pool.get()
            try:
                await log.poll(conn, raw, lambda document: document["total_votes"])
            finally:
                pool.put_nowait(conn)

        schedule = PollSchedule(
            plan.lag_poll_interval_s, plan.lag_s + plan.lag_tail_s + 30, plan.lag_tail_s
        )
        try:
            for tick in schedule.ticks():
                await asyncio.sleep(schedule.wait(tick))
                if schedule.over(tick, log.load_done, log.caught_up):
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

    def load_done() -> None:
        log.load_done = True

    stats = open_load(
        server,
        plan,
        "lag vote POST",
        factory,
        rate,
        plan.lag_s,
        hook=hook,
        max_requests=count,
        beside=poller,
        on_done=load_done,
    )
    return stats, log


def _sustained(stats: LoadStats, rate: float, log: LagLog, plan: Plan) -> bool:
    """Did the server keep up with the offered vote rate, and the poller with its schedule?"""
    expected_polls = plan.lag_s / plan.lag_poll_interval_s
    return rate_sustained(stats, rate) and len(log.polls) >= 0.8 * expected_polls


def phase_lag(
    server: Server,
    plan: Plan,
    users: list[BenchUser],
    stickers: list[BenchSticker],
    creator_video: tuple[Any, int],
    results: dict[str, Any],
) -> dict[str, Any]:
    """Votes at half the vote capacity (from the writes phase, else a short probe)."""
    capacity = float(
        results.get("vote_write_rps") or vote_capacity_probe(server, plan, users, stickers)
    )
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
        server.settle()
        stats, log = _lag_attempt(server, plan, voters, reader, sticker, rate)
        say_load(stats, note=" (incl. the results reads)")
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
        "live_lag_p95_s": percentile_or_none(samples, 95),
        "live_lag_p50_s": percentile_or_none(samples, 50),
        "live_lag_upper_s": max(upper, default=None),
        "live_lag_upper_p95_s": percentile_or_none(upper, 95),
        "live_lag_vote_rate": rate,
        "live_lag_rate_fraction": rate / capacity if capacity else None,
        "live_lag_rate_sustained": sustained,
        "live_lag_votes_committed": len(log.commits),
        "live_lag_vote_achieved_rps": stats.rps,
        "live_lag_vote_p50_ms": stats.p(50),
        "live_lag_vote_p99_ms": stats.p(99),
        "live_lag_polls": len(log.polls),
        "live_lag_poll_p50_ms": percentile_or_none(poll_ms, 50),
        "live_lag_poll_p99_ms": percentile_or_none(poll_ms, 99),
        "live_lag_poll_errors": log.poll_errors,
        "live_lag_final_total": last_total,
        "live_lag_caught_up_after_s": caught_up_after,
        "live_lag_vote_statuses": statuses(stats),
        "live_lag_cpu_ms_per_vote": cpu_per_request(stats),
    }


def vote_capacity_probe(
    server: Server, plan: Plan, users: list[BenchUser], stickers: list[BenchSticker]
) -> float:
    """A short closed-loop vote run, for the lag rate when the writes phase did not run."""
    traffic = VoteTraffic(server, users, stickers)
    closed_load(server, plan, "probe warm-up", traffic.vote(plan.connections), plan.warmup_s)
    stats = closed_load(server, plan, "vote probe", traffic.vote(plan.connections), 3.0)
    say(f"  capacity probe: {stats.summary()}")
    return stats.rps


# --- finalize 1M -------------------------------------------------------------------------------
GROUP_BY_SQL = """
    SELECT choice, count(*)
    FROM polls_vote v CROSS JOIN LATERAL unnest(v.option_ids) AS choice
    WHERE v.sticker_id = %s AND v.counted
    GROUP BY 1
"""


@dataclass
class GroupBy:
    """The plain GROUP BY of one sticker's votes, each run on a fresh connection."""

    database_url: str
    sticker_id: int
    counts: dict[int, int] = field(default_factory=dict)  # option -> votes, of the last run

    def run(self) -> float:
        """Seconds the statement took (the connection made before the clock starts)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            started = time.perf_counter()
            rows = conn.execute(GROUP_BY_SQL, [self.sticker_id]).fetchall()
            elapsed = time.perf_counter() - started
        self.counts = {int(option): int(votes) for option, votes in rows}
        return elapsed


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
    group_by = GroupBy(database_url, sticker.id)
    group_by_s, group_times = median_after_warmup(group_by.run)
    expected = group_by.counts
    with psycopg.connect(database_url, autocommit=True) as conn:
        plan_rows = conn.execute("EXPLAIN " + GROUP_BY_SQL, [sticker.id]).fetchall()
        # For context: the same query without parallel workers (INSERT … SELECT, as finalize
        # runs it, cannot use them).
        conn.execute("SET max_parallel_workers_per_gather = 0")
        serial_times = [
            seconds(lambda: conn.execute(GROUP_BY_SQL, [sticker.id]).fetchall()) for _ in range(3)
        ]
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
