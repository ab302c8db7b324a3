"""scale-oscillation (DESIGN §4): ≥3 replica changes and ≥2 reversals in 2h, the proposed one a reversal."""

from __future__ import annotations

import datetime

import hypothesis.strategies as st
from hypothesis import given

from webhook.detection import scale_oscillation
from webhook.detection.situation import Severity
from webhook.policy.model import PatternType

from .factories import AGENT, HPA, OTHER_AGENT, action, minutes, policy, resources, scale, situation, uids

POLICY = policy(PatternType.SCALE_OSCILLATION)


def detect(proposed, *history, policy=POLICY, **kwargs):
    return scale_oscillation.detect(situation(proposed, history, **kwargs), policy)


def test_design_example_3_5_3_5_by_an_agent_is_medium():
    history = [scale(3, 5, at=-41), scale(5, 3, at=-20)]
    proposed = scale(3, 5)
    finding = detect(proposed, *history)
    assert finding is not None and finding.triggered
    assert finding.pattern is PatternType.SCALE_OSCILLATION
    assert finding.severity is Severity.MEDIUM
    assert finding.summary == "2 direction reversals in 41m (3→5→3→5)"
    assert uids(finding.evidence) == uids([*history, proposed])
    assert finding.evidence[-1] is proposed
    assert finding.confidence == 0.5


def test_changes_by_the_hpa_count_as_history():
    finding = detect(scale(3, 5), scale(3, 5, at=-30), scale(5, 3, at=-25, actor=HPA))
    assert finding is not None and finding.triggered


def test_one_reversal_short_is_a_near_miss():
    finding = detect(scale(5, 3), scale(3, 5, at=-10))
    assert finding is not None and not finding.triggered
    assert finding.summary == "1 direction reversal in 10m (3→5→3)"
    assert finding.confidence < 0.5


def test_continuing_in_the_same_direction_is_never_a_finding():
    assert detect(scale(3, 2), scale(3, 5, at=-40), scale(5, 3, at=-20)) is None
    assert detect(scale(5, 6), scale(3, 5, at=-10)) is None


def test_a_single_change_is_nothing():
    assert detect(scale(3, 5)) is None


def test_not_a_replica_change_is_not_checked():
    assert detect(resources("64Mi", "128Mi"), scale(3, 5, at=-40), scale(5, 3, at=-20)) is None
    assert detect(scale(3, 3), scale(3, 5, at=-40), scale(5, 3, at=-20)) is None


def test_non_scale_events_in_history_are_skipped():
    history = [scale(3, 5, at=-40), action("restart_pod", at=-30), resources("1", "2", at=-25), scale(5, 3, at=-20)]
    finding = detect(scale(3, 5), *history)
    assert finding is not None and finding.triggered
    assert finding.summary == "2 direction reversals in 40m (3→5→3→5)"
    assert len(finding.evidence) == 3


def test_an_event_exactly_at_the_window_start_does_not_count():
    just_outside = detect(scale(3, 5), scale(3, 5, at=-120), scale(5, 3, at=-60))
    assert just_outside is not None and not just_outside.triggered
    just_inside = detect(scale(3, 5), scale(3, 5, at=-119.99), scale(5, 3, at=-60))
    assert just_inside is not None and just_inside.triggered


def test_a_reset_forgets_the_reversals_before_it():
    history = [scale(3, 5, at=-50), scale(5, 3, at=-40)]
    reset = {PatternType.SCALE_OSCILLATION: minutes(-40)}
    finding = detect(scale(3, 5), *history, resets=reset)
    assert finding is None  # only the proposed change remains
    other_reset = {PatternType.CONTROLLER_FIGHT: minutes(-40)}
    assert detect(scale(3, 5), *history, resets=other_reset).triggered


def test_min_occurrences_binds_and_one_short_is_a_near_miss():
    strict = policy(PatternType.SCALE_OSCILLATION, min_occurrences=4)
    near = detect(scale(3, 5), scale(3, 5, at=-40), scale(5, 3, at=-20), policy=strict)
    assert near is not None and not near.triggered
    hit = detect(scale(5, 3), scale(3, 5, at=-40), scale(5, 3, at=-20), scale(3, 5, at=-10), policy=strict)
    assert hit is not None and hit.triggered


def test_direction_changes_threshold_is_honoured():
    three = policy(PatternType.SCALE_OSCILLATION, thresholds={"directionChanges": 3})
    history = [scale(3, 5, at=-40), scale(5, 3, at=-20)]
    near = detect(scale(3, 5), *history, policy=three)
    assert near is not None and not near.triggered
    assert detect(scale(5, 3), *history, scale(3, 5, at=-10), policy=three).triggered


def test_high_at_three_reversals_spread_over_more_than_an_hour():
    history = [scale(3, 5, at=-110), scale(5, 3, at=-90), scale(3, 5, at=-70)]
    finding = detect(scale(5, 3), *history)
    assert finding.triggered and finding.severity is Severity.HIGH
    assert finding.summary == "3 direction reversals in 1h50m (3→5→3→5→3)"
    assert finding.confidence == 0.75


def test_critical_at_four_reversals_within_the_last_hour():
    history = [scale(3, 5, at=-50), scale(5, 3, at=-40), scale(3, 5, at=-30), scale(5, 3, at=-20)]
    finding = detect(scale(3, 5), *history)
    assert finding.triggered and finding.severity is Severity.CRITICAL
    assert finding.confidence == 1.0


def test_critical_window_edge_a_change_exactly_60m_ago_is_outside_it():
    history = [scale(3, 5, at=-60), scale(5, 3, at=-40), scale(3, 5, at=-30), scale(5, 3, at=-20)]
    finding = detect(scale(3, 5), *history)
    assert finding.triggered and finding.severity is Severity.HIGH  # 4 reversals, only 3 inside 60m
    history[0] = scale(3, 5, at=-59.9)
    assert detect(scale(3, 5), *history).severity is Severity.CRITICAL


def test_summary_span_is_whole_minutes_rounded_down_and_at_least_one():
    assert detect(scale(3, 5), scale(3, 5, at=-0.5), scale(5, 3, at=-0.2)).summary.endswith("in 30s (3→5→3→5)")
    assert "in 41m" in detect(scale(3, 5), scale(3, 5, at=-41.9), scale(5, 3, at=-20)).summary
    assert "in 2h (" in detect(scale(3, 5), scale(3, 5, at=-120), scale(5, 3, at=-20),
                               policy=policy(PatternType.SCALE_OSCILLATION,
                                             window=datetime.timedelta(hours=3))).summary


def test_history_out_of_order_is_put_in_time_order():
    finding = detect(scale(3, 5), scale(5, 3, at=-20), scale(3, 5, at=-41))
    assert finding.summary == "2 direction reversals in 41m (3→5→3→5)"


# --- properties -----------------------------------------------------------------------------

actors = st.sampled_from([AGENT, OTHER_AGENT, HPA])


@st.composite
def monotonic_changes(draw):
    """Replica changes all in one direction, with any timings inside the window and any actors."""
    steps = draw(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=12))
    up = draw(st.booleans())
    offsets = sorted(draw(st.lists(st.floats(min_value=-119.9, max_value=0), min_size=len(steps), max_size=len(steps))))
    replicas = 50
    events = []
    for step, offset in zip(steps, offsets):
        after = replicas + step if up else replicas - step
        events.append(scale(replicas, after, at=offset, actor=draw(actors)))
        replicas = after
    return events


@given(monotonic_changes())
def test_property_a_monotonic_sequence_never_triggers(events):
    *history, proposed = events
    finding = detect(proposed, *history)
    assert finding is None  # not even a near miss: the proposed change never turns back


@st.composite
def few_changes(draw):
    """Fewer replica changes (the proposed included) than minOccurrences, in any directions."""
    min_occurrences = draw(st.integers(min_value=2, max_value=8))
    count = draw(st.integers(min_value=1, max_value=min_occurrences - 1))
    events = []
    for index in range(count):
        before = draw(st.integers(min_value=0, max_value=10))
        after = draw(st.integers(min_value=0, max_value=10).filter(lambda value, b=before: value != b))
        events.append(scale(before, after, at=-(count - index) * 3, actor=draw(actors)))
    return min_occurrences, events


@given(few_changes(), st.integers(min_value=0, max_value=4))
def test_property_fewer_changes_than_min_occurrences_never_trigger(case, direction_changes):
    min_occurrences, events = case
    *history, proposed = events
    custom = policy(PatternType.SCALE_OSCILLATION, min_occurrences=min_occurrences,
                    thresholds={"directionChanges": direction_changes})
    finding = detect(proposed, *history, policy=custom)
    assert finding is None or not finding.triggered
