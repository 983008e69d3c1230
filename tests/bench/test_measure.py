"""The bench's shared measuring helpers (bench.measure), on figures made by hand."""

import math
import time

from bench.cpu import CpuUsage
from bench.httpload import LoadStats
from bench.measure import (
    Alternation,
    LagLog,
    PollSchedule,
    cpu_per_request,
    cpu_ratio,
    median_after_warmup,
    percentile_or_none,
    rate_sustained,
    ratio,
    server_cpu_ms,
    spread,
    statuses,
)


def _stats(
    ok: int, seconds: float, latency_s: float = 0.01, cpu: CpuUsage | None = None
) -> LoadStats:
    stats = LoadStats("load", duration_s=seconds, cpu=cpu)
    for _ in range(ok):
        stats.record(200, latency_s)
    return stats


def test_an_alternation_gives_b_over_a_overall_and_per_round() -> None:
    alternation = Alternation(
        _stats(400, 2.0), _stats(100, 2.0), rounds=[(200.0, 40.0), (0.0, 10.0), (200.0, 60.0)]
    )

    assert alternation.ratio == 0.25
    assert alternation.round_ratios() == [0.2, 0.3]  # a round where a answered nothing is left out
    assert alternation.round_spread() == {"min": 0.2, "median": 0.25, "max": 0.3}


def test_ratio_spread_and_percentile_are_none_without_figures() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(3.0, 0.0) is None
    assert ratio(None, 2.0) is None
    assert spread([]) is None
    assert percentile_or_none([], 99) is None
    assert percentile_or_none([3.0, 1.0, 2.0], 50) == 2.0


def test_statuses_count_answers_and_errors() -> None:
    stats = _stats(2, 1.0)
    stats.record(302, 0.01)
    stats.error("timeout")

    assert statuses(stats) == {"200": 2, "302": 1, "error:timeout": 1}


def test_server_cpu_leaves_out_the_load_generator_and_the_short_lived_backends() -> None:
    usage = CpuUsage(
        seconds={"web": 2.0, "postgres": 1.0, "postgres_short_lived": 5.0, "loadgen": 3.0},
        machine_busy_s=10.0,
        machine_total_s=20.0,
    )
    full = _stats(1000, 1.0, cpu=usage)
    bare = _stats(
        1000, 1.0, cpu=CpuUsage(seconds={"web": 1.5}, machine_busy_s=1.5, machine_total_s=20.0)
    )

    assert cpu_per_request(full) == {
        "web": 2.0,
        "postgres": 1.0,
        "postgres_short_lived": 5.0,
        "loadgen": 3.0,
        "total": 6.0,
        "other_processes_share": 0.0,
    }
    assert server_cpu_ms(full) == 3.0
    assert cpu_ratio(full, bare) == 0.5
    assert cpu_per_request(_stats(1, 1.0)) is None


def test_a_rate_is_sustained_when_nine_tenths_are_answered_in_time_without_errors() -> None:
    assert rate_sustained(_stats(90, 1.0), 100.0)
    assert not rate_sustained(_stats(89, 1.0), 100.0)
    assert not rate_sustained(_stats(100, 1.0, latency_s=0.6), 100.0)
    assert rate_sustained(_stats(100, 1.0, latency_s=0.6), 100.0, max_p50_ms=None)
    failing = _stats(100, 1.0)
    failing.error("timeout")
    assert not rate_sustained(failing, 100.0)


def test_a_poll_schedule_ticks_on_time_and_stops_once_caught_up_or_after_the_tail() -> None:
    schedule = PollSchedule(interval=0.5, limit_s=60.0, tail_s=2.0)
    ticks = schedule.ticks()
    first, second = next(ticks), next(ticks)
    log = LagLog(commits=[1.0, 2.0], polls=[(0.0, 0.1, 1)])

    assert second - first == 0.5
    assert not schedule.over(first, log.load_done, log.caught_up)  # the load still runs
    assert not schedule.over(first + 1.0, True, log.caught_up)  # done, not caught up, in tail
    assert schedule.over(first + 3.5, True, log.caught_up)  # the tail is over
    log.polls.append((0.2, 0.3, 2))
    assert log.caught_up()
    assert schedule.over(first + 1.5, True, log.caught_up)
    assert len(list(PollSchedule(interval=0.5, limit_s=2.0, tail_s=1.0).ticks())) == 5


def test_a_poll_schedule_stops_at_its_limit_whatever_the_load() -> None:
    schedule = PollSchedule(interval=0.01, limit_s=0.0, tail_s=10.0)

    assert schedule.over(time.perf_counter(), False, lambda: False)


def test_the_median_leaves_out_the_warm_up_run() -> None:
    runs = iter([100.0, 3.0, 1.0, 2.0])

    median, times = median_after_warmup(lambda: next(runs))

    assert (median, times) == (2.0, [3.0, 1.0, 2.0])
    assert math.isclose(sum(times), 6.0)
