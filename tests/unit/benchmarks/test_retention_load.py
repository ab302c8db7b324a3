"""The retention-load part's arithmetic: which seconds belong to a phase, and where a step's time goes."""

from __future__ import annotations

import pytest

from benchmarks.retention_load import Phase, Second, _in_phase, _spread, _steps_in


def second(at: int) -> Second:
    return Second(at=at, latencies=[1.0], errors=0)


def test_a_quiet_phase_keeps_only_its_whole_seconds() -> None:
    before = Phase("before", 100.4, 103.2)
    assert [s for s in range(99, 105) if _in_phase(second(s), before)] == [101, 102]


def test_a_job_keeps_every_second_it_touches_even_a_short_one() -> None:
    assert [s for s in range(99, 105) if _in_phase(second(s), Phase("retention", 100.4, 102.1))] == [100, 101, 102]
    assert [s for s in range(99, 105) if _in_phase(second(s), Phase("retention", 101.2, 101.3))] == [101]


def test_a_step_is_spread_over_the_seconds_it_ran_in() -> None:
    busy: dict[int, float] = {}
    _spread(busy, 10.5, 12.25)
    _spread(busy, 12.5, 12.75)
    assert busy == pytest.approx({10: 0.5, 11: 1.0, 12: 0.5})


def test_the_worst_second_names_the_steps_that_ran_in_it() -> None:
    busy = {"targets_over_limits": {"7": 0.8}, "traces": {"7": 0.1, "8": 0.5}, "delete_traces": {}}
    assert _steps_in(busy, second(7)) == "; run in: targets_over_limits 0.80 s, traces 0.10 s"
    assert _steps_in(busy, second(9)) == "; run in: its own Python"
    assert _steps_in({}, second(7)) == ""
