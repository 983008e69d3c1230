"""The rewards phases (import only after django.setup()).

- `fanout`: one `winning_ending` rule granted to every winning voter of an ending sticker
  (100,000 users) by the consumer on a real Celery worker, vs a plain INSERT … SELECT of the
  same grant rows into the same table;
- `grant_lag`: how far grants trail likes sent through the full HTTP stack at a sustained rate.

Each phase returns a flat dict of figures (the JSON keys) and prints what it measured.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from bench import fixtures
from bench.cpu import peak_rss_mb
from bench.fixtures import BenchSticker, BenchUser
from bench.httpload import build_request, percentile
from bench.measure import (
    PollSchedule,
    auth_headers,
    cpu_per_request,
    open_load,
    percentile_or_none,
    rate_sustained,
    ratio,
    say_load,
    spread,
    statuses,
)
from bench.plan import Plan, Server
from bench.stack import Proc, Processes, celery_argv, celery_ready, say, wait_for
from polls.models import Sticker, Vote
from polls.services.finalizing import sticker_finalize
from rewards.models import ActivityEvent, Badge, Entitlement, Grant, Perk, RewardRule
from rewards.services.events import reward_events_process
from rewards.services.rules import Scope, qualifying_sql, rule_apply
from rewards.tasks import process_reward_events

GRANT = Grant._meta.db_table
ENTITLEMENT = Entitlement._meta.db_table
ACTIVITY = ActivityEvent._meta.db_table
VOTE = Vote._meta.db_table
STICKER = Sticker._meta.db_table

# The fan-out worker listens on a queue of its own, so the live `rewards` worker of the run
# never takes the timed task (and its memory figure is the fan-out's alone).
FANOUT_QUEUE = "bench-fanout"
CONSUMER_LOCK = "rewards-consumer"  # the advisory lock of rewards.services.events
STATEMENT_TIMEOUT_MS = 180_000  # for every statement the phases send themselves

# The baseline: the same grant rows, into the same table, by the plainest statement.
PLAIN_INSERT_SELECT = f"""
    INSERT INTO {GRANT}
        (rule_id, user_id, period_key, badge_id, granted_at, source, revoke_reason)
    SELECT %(rule)s, v.user_id, '', %(badge)s, now(), 'event', ''
    FROM {VOTE} v
    WHERE v.sticker_id = %(sticker)s AND v.counted AND %(winner)s = ANY(v.option_ids)
"""


def _connect(database_url: str, *, no_seqscan: bool = False) -> psycopg.Connection[Any]:
    """An autocommit connection whose every statement is bounded (statement_timeout).

    no_seqscan: for the probe polled during a worker run, whose table's statistics say
    "empty" (ANALYZEd right after the reset) while the pass fills it: a sequential scan over
    the growing, not yet visible rows every 10 ms would compete with the run it times.
    """
    options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    if no_seqscan:
        options += " -c enable_seqscan=off"
    return psycopg.connect(database_url, autocommit=True, options=options)


# --- the consumer's state ----------------------------------------------------------------------
def consumer_drain(timeout_s: float = 600.0, max_passes: int = 2000) -> int:
    """Run the rewards consumer in-process until a pass found no full batch; returns passes.

    A pass that finds the consumer lock taken (a worker is running it) does nothing: wait and
    try again. Bounded in passes and time.
    """
    deadline = time.monotonic() + timeout_s
    passes = 0
    for _ in range(max_passes):
        if time.monotonic() > deadline:
            break
        report = reward_events_process()
        if not report.rows:  # another consumer held the lock
            time.sleep(0.2)
            continue
        passes += 1
        if not report.more:
            return passes
    raise RuntimeError(f"the rewards consumer did not catch up within {timeout_s:.0f}s")


def _consumer_lock_held(conn: psycopg.Connection[Any]) -> bool:
    key_row = conn.execute("SELECT hashtext(%s)::bigint", [CONSUMER_LOCK]).fetchone()
    assert key_row is not None
    key = int(key_row[0])
    # A one-bigint advisory lock shows its high 32 bits as classid and low 32 bits as objid.
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
        "AND classid = %s::bigint::oid AND objid = %s::bigint::oid "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [(key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF],
    ).fetchone()
    return bool(row and row[0])


def consumer_idle(
    database_url: str, settle: Callable[[], object], timeout_s: float = 120.0
) -> float:
    """Wait (bounded) until the broker queues are empty and no consumer pass is running.

    Returns the seconds waited, and says so when that was long (what kept the workers busy).
    """
    started = time.monotonic()
    settle()
    settled = time.monotonic() - started
    deadline = time.monotonic() + timeout_s
    quiet = 0
    with _connect(database_url) as conn:
        while time.monotonic() < deadline:
            quiet = 0 if _consumer_lock_held(conn) else quiet + 1
            if quiet >= 3:
                waited = time.monotonic() - started
                if waited > 5:
                    say(
                        f"  (waited {waited:.1f}s for the workers to go idle: queues "
                        f"{settled:.1f}s, then the consumer lock)"
                    )
                return waited
            time.sleep(0.1)
    raise RuntimeError(f"a rewards consumer pass still ran after {timeout_s:.0f}s")


# --- fan-out -----------------------------------------------------------------------------------
@dataclass
class FanoutCase:
    database_url: str
    sticker: BenchSticker
    expected: int  # winning counted voters
    rule_ids: list[int]  # every fan-out rule (their rows are removed before each run)
    worker: Proc
    timeout_s: float
    settle: Callable[[], object]
    probe_user: int  # a winning voter: their grant is visible once the whole pass committed
    peak_mb: float = 0.0
    idle_wait_s: float = 0.0  # untimed: waiting for the workers to go idle before worker runs
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def winner(self) -> int:
        return self.sticker.option_ids[0]


def _reset(case: FanoutCase) -> None:
    """Remove what a run wrote (grants, entitlements, feed entries), then VACUUM ANALYZE."""
    params = {"rules": case.rule_ids, "sticker": case.sticker.id}
    with _connect(case.database_url) as conn:
        with conn.transaction():
            conn.execute(
                f"DELETE FROM {ACTIVITY} WHERE kind IN ('earned_badge', 'earned_perk') "
                f"AND source_id IN (SELECT id FROM {GRANT} WHERE rule_id = ANY(%(rules)s))",
                params,
            )
            conn.execute(
                f"DELETE FROM {ENTITLEMENT} WHERE grant_id IN "
                f"(SELECT id FROM {GRANT} WHERE rule_id = ANY(%(rules)s))",
                params,
            )
            conn.execute(f"DELETE FROM {GRANT} WHERE rule_id = ANY(%(rules)s)", params)
            conn.execute(
                f"DELETE FROM {ACTIVITY} WHERE kind = 'vote_chose_ending' "
                f"AND source_id IN (SELECT id FROM {VOTE} WHERE sticker_id = %(sticker)s)",
                params,
            )
        for table in (GRANT, ENTITLEMENT, ACTIVITY):
            conn.execute(f"VACUUM ANALYZE {table}")


def _check(case: FanoutCase, rule: RewardRule, side: str) -> dict[str, Any]:
    """What the run wrote, and whether it is exactly one grant per winning counted voter."""
    with _connect(case.database_url) as conn:
        # The tables were ANALYZEd empty before the run: plan the counts with their real size.
        for table in (GRANT, ENTITLEMENT, ACTIVITY):
            conn.execute(f"ANALYZE {table}")
        row = conn.execute(
            f"""
            SELECT
                (SELECT count(*) FROM {GRANT} WHERE rule_id = %(rule)s),
                (SELECT count(*) FROM {GRANT} g WHERE g.rule_id = %(rule)s AND NOT EXISTS (
                    SELECT 1 FROM {VOTE} v WHERE v.sticker_id = %(sticker)s
                    AND v.user_id = g.user_id AND v.counted AND %(winner)s = ANY(v.option_ids))),
                (SELECT count(*) FROM {ENTITLEMENT} e JOIN {GRANT} g ON g.id = e.grant_id
                 WHERE g.rule_id = %(rule)s),
                (SELECT count(*) FROM {ACTIVITY} a JOIN {GRANT} g ON g.id = a.source_id
                 WHERE a.kind IN ('earned_badge', 'earned_perk') AND g.rule_id = %(rule)s),
                (SELECT count(*) FROM {ACTIVITY} a JOIN {VOTE} v ON v.id = a.source_id
                 WHERE a.kind = 'vote_chose_ending' AND v.sticker_id = %(sticker)s)
            """,
            {"rule": rule.pk, "sticker": case.sticker.id, "winner": case.winner},
        ).fetchone()
    assert row is not None
    grants, strangers, entitlements, feed, ending_feed = (int(x) for x in row)
    exact = grants == case.expected and strangers == 0
    if side != "plain":  # the rewards path also writes the perk entitlement and the feed entry
        wanted_entitlements = case.expected if rule.perk_id else 0
        exact = exact and entitlements == wanted_entitlements and feed == case.expected
    if side == "worker":  # …and the consumer pass the "your vote chose the ending" entries
        exact = exact and ending_feed == case.expected
    check = {
        "rule": "perk" if rule.perk_id else "badge",
        "side": side,
        "grants": grants,
        "grants_to_non_winners": strangers,
        "entitlements": entitlements,
        "reward_feed_entries": feed,
        "ending_feed_entries": ending_feed,
        "exact": exact,
    }
    case.checks.append(check)
    if not exact:
        say(f"  NOT EXACT after the {side} run: {check} (expected {case.expected} grants)")
    return check


def _plain_once(case: FanoutCase, rule: RewardRule) -> float:
    _reset(case)
    params = {
        "rule": rule.pk,
        "badge": rule.badge_id,
        "sticker": case.sticker.id,
        "winner": case.winner,
    }
    with _connect(case.database_url) as conn:
        started = time.perf_counter()
        conn.execute(PLAIN_INSERT_SELECT, params)  # autocommit: the time includes the commit
        elapsed = time.perf_counter() - started
    _check(case, rule, "plain")
    return elapsed


def _rule_apply_once(case: FanoutCase, rule: RewardRule) -> float:
    """rules.rule_apply in this process, as the consumer calls it, in its own transaction."""
    _reset(case)
    started = time.perf_counter()
    with transaction.atomic():
        rule_apply(rule, Scope(sticker_ids=[case.sticker.id]), source="event")
    elapsed = time.perf_counter() - started
    connection.close()
    _check(case, rule, "rule_apply")
    return elapsed


def _worker_once(case: FanoutCase, rule: RewardRule) -> float:
    """process_reward_events through the broker to the solo worker: send -> grants visible.

    The sticker is made newly final again (finalized_at = now), so the pass finds it exactly as
    after sticker_finalize; the probe user's grant becomes visible when the pass's transaction
    (ending feed entries, grants, entitlements, reward feed entries) commits, all at once.
    """
    _reset(case)
    case.idle_wait_s += consumer_idle(case.database_url, case.settle)
    with _connect(case.database_url, no_seqscan=True) as conn:
        conn.execute(f"UPDATE {STICKER} SET finalized_at = now() WHERE id = %s", [case.sticker.id])
        connection.close()  # hold no snapshot or lock in this process during the run
        started = time.perf_counter()
        process_reward_events.apply_async(queue=FANOUT_QUEUE)
        deadline = started + case.timeout_s
        while True:
            row = conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM {GRANT} WHERE rule_id = %s AND user_id = %s)",
                [rule.pk, case.probe_user],
            ).fetchone()
            if row and row[0]:
                break
            if case.worker.popen.poll() is not None:
                raise RuntimeError(f"fan-out worker exited:\n{case.worker.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no grants within {case.timeout_s:.0f}s of the send")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    case.peak_mb = max(case.peak_mb, peak_rss_mb(case.worker.pid))
    _check(case, rule, "worker")
    return elapsed


def _fanout_variant(case: FanoutCase, rule: RewardRule, runs: int) -> dict[str, list[float]]:
    sides: dict[str, Callable[[FanoutCase, RewardRule], float]] = {
        "plain": _plain_once,
        "worker": _worker_once,
        "rule_apply": _rule_apply_once,
    }
    # One untimed run of each: the same warm buffer cache and a worker that ran a pass before.
    for run in sides.values():
        run(case, rule)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_no in range(runs):
        # Alternate which side goes first, so drift in the machine hits both.
        order = ("plain", "worker") if round_no % 2 == 0 else ("worker", "plain")
        for name in (*order, "rule_apply"):
            times[name].append(sides[name](case, rule))
        say(
            f"  run {round_no + 1}: worker {times['worker'][-1]:.3f}s, plain INSERT … SELECT "
            f"{times['plain'][-1]:.3f}s, rule_apply in-process {times['rule_apply'][-1]:.3f}s; "
            f"worker peak RSS {case.peak_mb:.0f} MB"
        )
    return times


def _round_ratios(times: dict[str, list[float]]) -> dict[str, float] | None:
    """worker / plain of each round: the spread shows how much the machine moved meanwhile."""
    return spread([w / p for w, p in zip(times["worker"], times["plain"], strict=True) if p])


def phase_fanout(
    server: Server,
    plan: Plan,
    processes: Processes,
    creator_video: tuple[Any, int],
    database_url: str,
) -> dict[str, Any]:
    settle = server.settle
    creator, video_id = creator_video
    winners = plan.fanout_winners
    losers, uncounted = winners // 2, winners // 100
    say(
        f"Reward fan-out: an ending sticker with {winners:,} winning voters (+{losers:,} for the "
        f"other ending, +{uncounted:,} uncounted), a winning_ending rule (badge, then perk)"
    )
    sticker = fixtures.ending_sticker_create(creator, video_id)
    fill = fixtures.ending_fill(sticker, winners, losers, uncounted, prefix="bench-e-")
    say(
        "  filled: users {users_insert_s:.1f}s, votes {votes_insert_s:.1f}s, "
        "VACUUM ANALYZE {vacuum_analyze_s:.1f}s".format(**fill)
    )
    # The consumer reads votes as they come in, long before a sticker closes: bring its
    # watermarks past these (and any earlier phase's) votes first, as in production.
    consumer_idle(database_url, settle)
    started = time.perf_counter()
    drain_passes = consumer_drain()
    drain_s = time.perf_counter() - started
    say(f"  the rewards consumer caught up with the votes: {drain_passes} passes, {drain_s:.1f}s")

    # Finalize with the app's own service. Its wake-up of the consumer is held back (no
    # WAKE_ON_COMMIT topics meanwhile): the timed runs below send that pass themselves.
    fixtures.sticker_set_closed(sticker.id)
    started = time.perf_counter()
    with override_settings(WAKE_ON_COMMIT={}):
        finalized = sticker_finalize(sticker_id=sticker.id)
    finalize_s = time.perf_counter() - started
    state = Sticker.objects.filter(pk=sticker.id).values("state", "winner_option_id").get()
    if (
        not finalized
        or state["state"] != "final"
        or state["winner_option_id"] != sticker.option_ids[0]
    ):
        raise RuntimeError(f"the ending sticker did not finalize as expected: {state}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), min(user_id) FROM {VOTE} "
            f"WHERE sticker_id = %s AND counted AND %s = ANY(option_ids)",
            [sticker.id, sticker.option_ids[0]],
        )
        expected, probe_user = cursor.fetchone()
    if expected != winners:
        raise RuntimeError(f"{expected} winning voters, not {winners}")
    say(f"  sticker_finalize: {finalize_s:.2f}s, winner ending 0 with {expected:,} counted votes")

    pid = os.getpid()
    now = timezone.now()
    badge = Badge.objects.create(slug=f"bench-ending-{pid}", name="Chose the ending")
    perk = Perk.objects.create(slug=f"bench-ending-{pid}", name="Ending perk")
    # General rules (any ending sticker), as created by staff and already backfilled.
    rules = {
        "badge": RewardRule.objects.create(
            name="bench: voted for the winning ending (badge)",
            trigger=RewardRule.Trigger.WINNING_ENDING,
            badge=badge,
            is_active=False,
            backfilled_at=now,
        ),
        "perk": RewardRule.objects.create(
            name="bench: voted for the winning ending (perk)",
            trigger=RewardRule.Trigger.WINNING_ENDING,
            perk=perk,
            is_active=False,
            backfilled_at=now,
        ),
    }
    rule_ids = [rule.pk for rule in rules.values()]

    worker = processes.start("celery-fanout", celery_argv("bench-fanout", FANOUT_QUEUE))
    times: dict[str, dict[str, list[float]]] = {}
    plans: dict[str, list[str]] = {}
    try:
        wait_for(lambda: celery_ready(worker), "ready", worker, timeout=60)
        idle_mb = peak_rss_mb(worker.pid)
        case = FanoutCase(
            database_url=database_url,
            sticker=sticker,
            expected=int(expected),
            rule_ids=rule_ids,
            worker=worker,
            timeout_s=plan.fanout_timeout_s,
            settle=settle,
            probe_user=int(probe_user),
        )
        for variant, created in rules.items():
            RewardRule.objects.filter(pk__in=rule_ids).update(is_active=False)
            RewardRule.objects.filter(pk=created.pk).update(is_active=True)
            rule = RewardRule.objects.select_related("badge", "perk").get(pk=created.pk)
            qualified, params = qualifying_sql(rule, Scope(sticker_ids=[sticker.id]))
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + qualified, params)
                plans[variant] = [str(line[0]) for line in cursor.fetchall()]
            say(
                f"  {variant} rule: {plan.fanout_runs} runs of each side "
                f"(after one untimed run of each), rows removed and VACUUM ANALYZE before each"
            )
            times[variant] = _fanout_variant(case, rule, plan.fanout_runs)
    finally:
        processes.stop(worker)
    RewardRule.objects.filter(pk__in=rule_ids).update(is_active=False)
    _reset(case)  # later phases start from the same tables as when this one runs alone
    # Leave the consumer's `finals` watermark past the sticker, so later phases' passes do not
    # process it again: an old finalized_at, then one pass.
    Sticker.objects.filter(pk=sticker.id).update(finalized_at=timezone.now() - timedelta(minutes=1))
    consumer_idle(database_url, settle)
    consumer_drain()

    medians = {
        variant: {side: statistics.median(values) for side, values in sides.items()}
        for variant, sides in times.items()
    }
    exact = all(check["exact"] for check in case.checks)
    for variant, m in medians.items():
        say(
            f"  {variant}: worker {m['worker']:.3f}s vs plain {m['plain']:.3f}s -> "
            f"{m['worker'] / m['plain']:.2f}x; rule_apply alone {m['rule_apply']:.3f}s -> "
            f"{m['rule_apply'] / m['plain']:.2f}x"
        )
    say(f"  every run exact (one grant per winning counted voter, with its rows): {exact}")
    badge_m, perk_m = medians["badge"], medians["perk"]
    return {
        "reward_fanout_100k_ratio": ratio(badge_m["worker"], badge_m["plain"]),
        "reward_fanout_100k_s": badge_m["worker"],
        "plain_insert_select_100k_s": badge_m["plain"],
        "reward_fanout_rows": int(expected),
        "reward_fanout_round_ratios": _round_ratios(times["badge"]),
        "reward_fanout_rule_apply_s": badge_m["rule_apply"],
        "reward_fanout_rule_apply_ratio": ratio(badge_m["rule_apply"], badge_m["plain"]),
        "reward_fanout_perk_100k_ratio": ratio(perk_m["worker"], perk_m["plain"]),
        "reward_fanout_perk_100k_s": perk_m["worker"],
        "plain_insert_select_perk_100k_s": perk_m["plain"],
        "reward_fanout_perk_round_ratios": _round_ratios(times["perk"]),
        "reward_fanout_perk_rule_apply_s": perk_m["rule_apply"],
        "reward_fanout_perk_rule_apply_ratio": ratio(perk_m["rule_apply"], perk_m["plain"]),
        "reward_fanout_exact": exact,
        # The last check of each rule and side (every run's is printed when it is not exact).
        "reward_fanout_checks": {f"{c['rule']}/{c['side']}": c for c in case.checks},
        "reward_fanout_worker_peak_mb": case.peak_mb,
        "reward_fanout_worker_idle_mb": idle_mb,
        "reward_fanout_idle_wait_s": case.idle_wait_s,
        "reward_fanout_runs_s": times,
        "reward_fanout_voters": {"winners": winners, "losers": losers, "uncounted": uncounted},
        "reward_fanout_fill_s": fill,
        "reward_fanout_finalize_s": finalize_s,
        "reward_fanout_qualifying_plan": plans,
        "reward_fanout_method": (
            "rewards.tasks.process_reward_events sent through the broker to a solo Celery "
            f"worker (-Q {FANOUT_QUEUE}), timed from the send until the grants are visible"
        ),
    }


# --- grant lag ---------------------------------------------------------------------------------
@dataclass
class GrantLagLog:
    liked: dict[int, float] = field(default_factory=dict)  # user -> when the like's 2xx arrived
    seen: dict[int, float] = field(default_factory=dict)  # user -> when the grant was first seen
    poll_ms: list[float] = field(default_factory=list)
    poll_errors: int = 0
    load_done: threading.Event = field(default_factory=threading.Event)

    def caught_up(self) -> bool:
        """Every liked user's grant was seen."""
        return self.liked.keys() <= self.seen.keys()


def _grant_poller(database_url: str, rule_id: int, plan: Plan, log: GrantLagLog) -> None:
    """Every poll interval (scheduled), read the users the rule has granted; bounded in time.

    After the load it polls until every liked user's grant was seen, or for the tail time.
    """
    with _connect(database_url) as conn:
        schedule = PollSchedule(
            plan.grant_lag_poll_interval_s,
            plan.grant_lag_s + plan.grant_lag_tail_s + 30,
            plan.grant_lag_tail_s,
        )
        for tick in schedule.ticks():
            time.sleep(schedule.wait(tick))
            if schedule.over(tick, log.load_done.is_set(), log.caught_up):
                break
            sent = time.perf_counter()
            try:
                rows = conn.execute(
                    f"SELECT user_id FROM {GRANT} WHERE rule_id = %s", [rule_id]
                ).fetchall()
            except psycopg.Error:
                log.poll_errors += 1
                continue
            read = time.perf_counter()
            log.poll_ms.append(1000 * (read - sent))
            for (user_id,) in rows:
                log.seen.setdefault(int(user_id), read)


def phase_grant_lag(
    server: Server, plan: Plan, creator_video: tuple[Any, int], database_url: str
) -> dict[str, Any]:
    creator, _video_id = creator_video
    rate = plan.grant_lag_rate
    count = int(rate * plan.grant_lag_s)
    users: list[BenchUser] = fixtures.users_create("bench-g-", count)
    videos = fixtures.videos_create(creator, plan.grant_lag_videos)
    badge = Badge.objects.create(slug=f"bench-first-like-{os.getpid()}", name="First like")
    rule = RewardRule.objects.create(
        name="bench: total likes >= 1",
        trigger=RewardRule.Trigger.TOTAL_LIKES,
        threshold=1,
        badge=badge,
        backfilled_at=timezone.now(),
    )
    debounce = float(settings.WAKE_DEBOUNCE_SECONDS)
    say(
        f"Grant lag: {count} likes by distinct users at {rate:.0f}/s (open loop, "
        f"PUT /videos/{{id}}/like over {len(videos)} videos), rule total_likes >= 1 (badge); "
        f"grants polled every {plan.grant_lag_poll_interval_s * 1000:.0f} ms; "
        f"WAKE_DEBOUNCE_SECONDS={debounce:g}"
    )
    consumer_idle(database_url, server.settle)
    connection.close()
    log = GrantLagLog()

    def factory(index: int, seq: int) -> bytes:
        user = users[seq]
        return build_request(
            "PUT",
            f"/api/v1/videos/{videos[seq % len(videos)]}/like",
            server.host_header,
            auth_headers(user),
        )

    def hook(seq: int, status: int, body: bytes, sent: float, done: float) -> None:
        if 200 <= status < 300:
            log.liked[users[seq].id] = done

    poller = threading.Thread(
        target=_grant_poller, args=(database_url, rule.pk, plan, log), name="grant-poller"
    )
    poller.start()
    try:
        stats = open_load(
            server,
            plan,
            "like PUT",
            factory,
            rate,
            plan.grant_lag_s,
            hook=hook,
            max_requests=count,
            on_done=log.load_done.set,
        )
    finally:
        log.load_done.set()
        poller.join(timeout=plan.grant_lag_s + plan.grant_lag_tail_s + 60)
    if poller.is_alive():
        raise RuntimeError("the grant poller did not stop")
    say_load(stats)

    lags = [max(0.0, log.seen[user] - done) for user, done in log.liked.items() if user in log.seen]
    missing = len(log.liked) - len(lags)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), count(DISTINCT granted_at) FROM {GRANT} WHERE rule_id = %s",
            [rule.pk],
        )
        granted, passes = cursor.fetchone()
    sustained = rate_sustained(stats, rate)
    say(
        f"  grant lag over {len(lags)} likes: max {max(lags, default=0):.3f}s, p95 "
        f"{percentile(lags, 95):.3f}s, p50 {percentile(lags, 50):.3f}s; {granted} grants in "
        f"{passes} consumer passes; {missing} liked users without a grant after the tail"
        + ("" if sustained else "; RATE NOT SUSTAINED")
    )
    return {
        "grant_lag_s": max(lags, default=None),
        "grant_lag_p95_s": percentile_or_none(lags, 95),
        "grant_lag_p50_s": percentile_or_none(lags, 50),
        "grant_lag_likes": len(log.liked),
        "grant_lag_missing": missing,
        "grant_lag_grants": int(granted),
        "grant_lag_consumer_passes": int(passes),
        "grant_lag_wake_debounce_s": debounce,
        "grant_lag_like_rate": rate,
        "grant_lag_rate_sustained": sustained,
        "grant_lag_like_achieved_rps": stats.rps,
        "grant_lag_like_p50_ms": stats.p(50),
        "grant_lag_like_p99_ms": stats.p(99),
        "grant_lag_like_statuses": statuses(stats),
        "grant_lag_polls": len(log.poll_ms),
        "grant_lag_poll_p50_ms": percentile_or_none(log.poll_ms, 50),
        "grant_lag_poll_errors": log.poll_errors,
        "grant_lag_cpu_ms_per_like": cpu_per_request(stats),
    }
