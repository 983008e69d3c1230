"""The bench's table of phases (bench.phases) against the functions it names and the report."""

import inspect

import pytest

from bench import report
from bench.phases import NAMES, PHASES, Phase, PhaseInputs
from bench.runner import parse_args


@pytest.mark.parametrize("phase", PHASES, ids=lambda phase: phase.name)
def test_each_phase_is_called_with_what_its_row_says_it_needs(phase: Phase) -> None:
    # given the function the row names
    parameters = inspect.signature(phase.measure()).parameters

    # then the row's needs are exactly its parameters, each a field of PhaseInputs
    assert tuple(parameters) == phase.needs
    assert set(phase.needs) <= {name for name in PhaseInputs.__dataclass_fields__}


def test_a_row_cannot_need_what_the_run_does_not_make() -> None:
    with pytest.raises(ValueError, match="needs \\['stack'\\]"):
        Phase("broken", "bench.poll_phases.phase_writes", needs=("plan", "stack"))


def test_the_table_names_every_phase_once_and_every_figure_once() -> None:
    keys = [target.key for phase in PHASES for target in phase.targets]
    keys += [info.key for phase in PHASES for info in phase.info]

    assert NAMES == [
        "writes",
        "reads",
        "lag",
        "finalize",
        "fanout",
        "grant_lag",
        "trending",
        "analytics",
    ]
    assert len(keys) == len(set(keys)) == 19
    assert all(phase.targets or phase.info for phase in PHASES)


def test_only_accepts_the_table_names_and_refuses_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).phases == NAMES
    assert parse_args(["--only", "writes, reads"]).phases == ["writes", "reads"]

    with pytest.raises(SystemExit):
        parse_args(["--only", "writes,votes"])
    assert "unknown phase(s) ['votes']" in capsys.readouterr().err


def test_the_report_shows_the_rows_of_the_phases_that_ran_in_the_table_order() -> None:
    # given figures of the reads phase (one target met, one missed) and of trending
    results = {
        "results_read_ratio": 0.9,
        "auth_overhead_ratio": 0.4,
        "trending_precision": 1.0,
        "trending_recall": 0.85,
        "vote_write_ratio": 0.7,  # the writes phase did not run: not reported
    }

    # when
    text = report.render(results, ["trending", "reads"])
    verdicts = report.verdicts(results, ["trending", "reads"])

    # then
    titles = [
        line.split("]")[1].split("  ")[0].strip() for line in text.splitlines() if "] " in line
    ]
    assert titles == [
        "Results reads, throughput",
        "Authentication's cost, throughput",
        "Trending, precision of the top 20",
        "Trending, recall of the top 20",
    ]
    assert "[PASS] Results reads, throughput" in text
    assert "target >= 0.8x" in text
    assert "[FAIL] Authentication's cost, throughput" in text
    assert "2 of 4 targets pass, 2 fail" in text
    assert "only trending,reads" in text
    assert verdicts == {
        "results_read_ratio": "PASS",
        "auth_overhead_ratio": "FAIL",
        "trending_precision": "PASS",
        "trending_recall": "FAIL",
    }
