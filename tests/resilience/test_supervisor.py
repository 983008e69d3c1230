"""`make run` as a supervisor: crashed children come back, repeated crashes are reported loudly
without stopping the API, and Ctrl-C stops everything it started.

A stack of its own (see stack.py), with the restart backoff capped at 2 s so a crash loop takes
seconds. Its tests run in order on one xdist worker (`--dist loadfile`); the last one stops it.
"""

import os
import signal
import time
from collections.abc import Iterator
from functools import partial

import psycopg
import pytest

from tests.resilience.stack import Stack, pid_alive, port_open, wait_for


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    stack = Stack("supervisor", extra_env={"CHORUS_RESTART_MAX_DELAY": "2"})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        stack.kill_everything()


def _healthy(stack: Stack) -> bool:
    try:
        return stack.request("GET", "/healthz", timeout=5).status == 200
    except OSError:
        return False


def _restarted(stack: Stack, name: str, old_pid: int) -> bool:
    return stack.current_pid(name) != old_pid


def test_metrics_are_served_by_the_web_tier_and_by_the_worker(stack: Stack) -> None:
    # given a request the web tier has answered, and tasks the worker has run (beat's sweeps)
    assert stack.request("GET", "/api/v1/me").status == 401
    assert wait_for(lambda: "succeeded in" in stack.log(), 30)
    # when both are scraped from loopback
    web = stack.request("GET", "/metrics").body
    worker = wait_for(lambda: stack.fetch_text(stack.metrics_port, "/metrics"), 30, interval=0.5)
    # then the web page has the request, domain and queue families, and the worker's its tasks
    assert 'chorus_http_requests_total{method="GET",route="api/v1/me",status="401"}' in web
    for family in (
        "chorus_http_request_duration_seconds_bucket",
        "chorus_celery_queue_length",
        "chorus_live_tally_lag_seconds",
        "chorus_stickers_overdue",
        "chorus_reward_consumer_lag",
    ):
        assert family in web, family
    assert 'chorus_celery_tasks_total{queue="closing",state="succeeded"' in worker


def test_a_crash_loop_is_reported_loudly_and_the_api_keeps_serving(stack: Stack) -> None:
    # given beat running
    # when it is killed five times in a row, each time right after it came back
    for _ in range(5):
        beat = stack.current_pid("beat")
        os.kill(beat, signal.SIGKILL)
        assert _healthy(stack)
        assert wait_for(partial(_restarted, stack, "beat", beat), 15)
    # then the supervisor said so loudly, kept restarting it, and never stopped the web tier
    log = stack.log()
    assert "ERROR: beat has exited 5 times in the last 5 minutes; still restarting it" in log
    assert log.count("==> beat (pid") == 5
    assert pid_alive(stack.current_pid("beat"))
    assert len(stack.child_pids("web")) == 1
    assert _healthy(stack)


def test_a_killed_web_server_is_restarted_too(stack: Stack) -> None:
    web = stack.current_pid("web")
    os.kill(web, signal.SIGKILL)
    assert wait_for(partial(_restarted, stack, "web", web), 15)
    assert wait_for(lambda: _healthy(stack), 30)
    assert f"web (pid {web}) exited unexpectedly (status 137)" in stack.log()


def _sweeps_done(stack: Stack) -> int:
    return stack.log().count("Task polls.tasks.close_due_stickers[")  # received + succeeded


@pytest.mark.parametrize("seconds", [5, 60])
def test_the_worker_rides_out_a_broker_outage_with_a_task_in_flight(
    stack: Stack, seconds: int
) -> None:
    # given a reward pass in flight (unacknowledged, held mid-way on the grants table) for a user
    # who just liked two videos under a "2 likes -> badge" rule
    creator = stack.register("creator")[1]
    videos = [
        stack.request(
            "POST", "/api/v1/videos", {"title": "v", "duration_ms": 1000}, token=creator
        ).body["id"]
        for _ in range(2)
    ]
    rule = stack.badge_rule("total_likes", threshold=2)
    first_id, first = stack.register("liker")
    worker = stack.current_pid("worker")
    exits_before = stack.log().count("exited unexpectedly")
    with psycopg.connect(stack.database_url, connect_timeout=5) as holder:
        holder.execute("LOCK TABLE rewards_grant IN SHARE ROW EXCLUSIVE MODE")
        for video in videos:
            assert stack.request("PUT", f"/api/v1/videos/{video}/like", token=first).status == 201
        assert wait_for(lambda: stack.waiting_on("rewards_grant"), 30)
        # when Redis stops, the task finishes while it is away (its ack cannot be sent), and
        # Redis comes back after `seconds`
        stack.stop_redis()
        holder.rollback()
    time.sleep(seconds)
    stack.start_redis()
    back_at = time.monotonic()
    sweeps = _sweeps_done(stack)
    # then the same worker process, never restarted, is consuming again within seconds
    consuming = wait_for(lambda: _sweeps_done(stack) > sweeps, 30, 0.2)
    reconnected = time.monotonic() - back_at
    print(f"\nbroker down {seconds} s: the worker consumed again {reconnected:.1f} s after")
    assert consuming
    assert reconnected <= 10
    assert stack.current_pid("worker") == worker and pid_alive(worker)
    assert stack.log().count("exited unexpectedly") == exits_before
    assert "Unrecoverable error" not in stack.log()
    # and the grant of the pass in flight exists once; a like after the return is granted too
    second_id, second = stack.register("liker")
    for video in videos:
        assert stack.request("PUT", f"/api/v1/videos/{video}/like", token=second).status == 201

    # (other users who liked twice, in earlier tests, may earn the new rule's badge too: a rule
    # applies to history; each grant still exists once)
    def granted_once() -> bool:
        grants = dict(stack.grants(rule))
        return set(grants.values()) == {1} and {first_id, second_id} <= grants.keys()

    assert wait_for(granted_once, 30), stack.grants(rule)


def test_ctrl_c_stops_everything_it_started(stack: Stack) -> None:
    # given everything running
    started = stack.everything_started()
    assert len(started) > 5
    # when Ctrl-C is pressed (the terminal sends SIGINT to the foreground process group)
    took = stack.stop_by(signal.SIGINT)
    print(f"\nstopped in {took:.1f} s")
    # then all of it is gone within 10 s, and the ports are free
    assert took < 10
    assert [pid for pid in started if pid_alive(pid)] == []
    assert not any(
        port_open(port)
        for port in (stack.port, stack.metrics_port, stack.pg_port, stack.redis_port)
    )
    assert "==> Ctrl-C: shutting down" in stack.log()
    assert stack.log().rstrip().endswith("==> Stopped")
