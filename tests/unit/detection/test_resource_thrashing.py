"""resource-thrashing (DESIGN §4): one dimension reversing ≥2 times, or ≥3 scale/resource alternations, in 90m."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given

from webhook.actions.model import ResourceChange
from webhook.detection import resource_thrashing
from webhook.detection.situation import Severity
from webhook.policy.model import PatternType

from .factories import AGENT, HPA, action, change, policy, resources, scale, situation, uids

POLICY = policy(PatternType.RESOURCE_THRASHING)


def detect(proposed, *history, policy=POLICY, **kwargs):
    return resource_thrashing.detect(situation(proposed, history, **kwargs), policy)


def memory(before, after, *, at=0, **kwargs):
    return resources(before, after, at=at, **kwargs)


# --- (a) one dimension reversing ------------------------------------------------------------

def test_memory_limit_up_down_up_triggers_medium():
    history = [memory("64Mi", "128Mi", at=-35), memory("128Mi", "64Mi", at=-20)]
    proposed = memory("64Mi", "128Mi")
    finding = detect(proposed, *history)
    assert finding is not None and finding.triggered
    assert finding.severity is Severity.MEDIUM
    assert finding.summary == "2 direction reversals of app memory limit in 35m (64Mi→128Mi→64Mi→128Mi)"
    assert uids(finding.evidence) == uids([*history, proposed])
    assert finding.confidence == 0.5


def test_one_reversal_is_a_near_miss():
    finding = detect(memory("128Mi", "64Mi"), memory("64Mi", "128Mi", at=-10))
    assert finding is not None and not finding.triggered
    assert finding.summary == "1 direction reversal of app memory limit in 10m (64Mi→128Mi→64Mi)"


def test_continuing_in_one_direction_is_nothing():
    assert detect(memory("256Mi", "512Mi"), memory("64Mi", "128Mi", at=-30), memory("128Mi", "256Mi", at=-20)) is None


def test_dimensions_are_separate():
    # The limit goes up, the request goes down, cpu up: no single dimension reverses twice.
    history = [
        memory("64Mi", "128Mi", at=-30),
        memory("128Mi", "64Mi", at=-20, field="requests"),
        memory("1", "2", at=-15, resource="cpu"),
        memory("128Mi", "64Mi", at=-10, container="sidecar"),
    ]
    assert detect(memory("128Mi", "256Mi"), *history) is None


def test_the_dimension_with_most_reversals_is_reported():
    both = lambda a, b, at=0: resources(changes=[change(a, b, field="requests"), change(a, b)], at=at)  # noqa: E731
    history = [both("64Mi", "128Mi", at=-40), both("128Mi", "64Mi", at=-30),
               memory("64Mi", "128Mi", at=-20, field="requests"), memory("128Mi", "64Mi", at=-15, field="requests")]
    finding = detect(both("64Mi", "128Mi"), *history)
    assert finding.triggered
    assert finding.summary.startswith("4 direction reversals of app memory request in 40m")
    assert finding.severity is Severity.HIGH


def test_equal_reversals_report_the_first_dimension_by_name():
    both = lambda a, b, at=0: resources(changes=[change(a, b), change(a, b, field="requests")], at=at)  # noqa: E731
    finding = detect(both("64Mi", "128Mi"), both("64Mi", "128Mi", at=-40), both("128Mi", "64Mi", at=-30))
    assert "of app memory limit" in finding.summary  # app/memory/limits < app/memory/requests


def test_three_reversals_are_high():
    history = [memory("1Gi", "2Gi", at=-80), memory("2Gi", "1Gi", at=-60), memory("1Gi", "2Gi", at=-40)]
    finding = detect(memory("2Gi", "1Gi"), *history)
    assert finding.triggered and finding.severity is Severity.HIGH
    assert finding.summary == "3 direction reversals of app memory limit in 1h20m (1Gi→2Gi→1Gi→2Gi→1Gi)"


def test_window_is_90_minutes_exclusive_of_its_start():
    outside = detect(memory("64Mi", "128Mi"), memory("64Mi", "128Mi", at=-90), memory("128Mi", "64Mi", at=-20))
    assert outside is not None and not outside.triggered
    inside = detect(memory("64Mi", "128Mi"), memory("64Mi", "128Mi", at=-89.9), memory("128Mi", "64Mi", at=-20))
    assert inside.triggered


def test_changes_by_other_actors_count():
    history = [memory("64Mi", "128Mi", at=-35, actor=HPA), memory("128Mi", "64Mi", at=-20)]
    assert detect(memory("64Mi", "128Mi"), *history).triggered


def test_quantities_without_text_are_printed_as_numbers():
    plain = lambda b, a, at=0: resources(changes=[ResourceChange("app", "cpu", "requests", b, a)], at=at)  # noqa: E731
    finding = detect(plain(0.5, 1.0), plain(0.5, 1.0, at=-30), plain(1.0, 0.5, at=-20))
    assert finding.summary == "2 direction reversals of app cpu request in 30m (0.5→1→0.5→1)"


# --- (b) scale and resource changes alternating ----------------------------------------------

def test_three_alternations_trigger():
    history = [scale(3, 5, at=-20), memory("64Mi", "128Mi", at=-15), scale(5, 6, at=-10)]
    proposed = memory("128Mi", "256Mi")
    finding = detect(proposed, *history)
    assert finding is not None and finding.triggered
    assert finding.summary == "3 alternations between scale and resource changes in 20m"
    assert uids(finding.evidence) == uids([*history, proposed])
    assert finding.severity is Severity.MEDIUM


def test_two_alternations_are_a_near_miss():
    finding = detect(scale(5, 6), scale(3, 5, at=-15), memory("64Mi", "128Mi", at=-10))
    assert finding is not None and not finding.triggered
    assert finding.summary == "2 alternations between scale and resource changes in 15m"


def test_one_alternation_is_nothing():
    assert detect(scale(5, 6), memory("64Mi", "128Mi", at=-15), memory("128Mi", "256Mi", at=-10)) is None


def test_the_proposed_must_switch_class():
    history = [scale(3, 5, at=-20), memory("64Mi", "128Mi", at=-15), scale(5, 6, at=-10),
               memory("128Mi", "256Mi", at=-5)]
    assert detect(memory("256Mi", "512Mi"), *history) is None


def test_an_event_that_scales_and_resizes_is_a_resource_change():
    both = resources("64Mi", "128Mi", at=-15, replicas_before=3, replicas_after=5)
    # scale, both(=resource), scale, proposed resource: 3 alternations
    finding = detect(memory("128Mi", "256Mi"), scale(2, 3, at=-20), both, scale(5, 6, at=-10))
    assert finding.triggered


def test_four_alternations_are_high():
    history = [memory("1", "2", at=-30, resource="cpu"), scale(3, 5, at=-25), memory("64Mi", "128Mi", at=-20),
               scale(5, 6, at=-10)]
    finding = detect(memory("128Mi", "256Mi"), *history)
    assert finding.triggered and finding.severity is Severity.HIGH
    assert finding.summary.startswith("4 alternations")


def test_both_triggers_are_named_and_evidence_merged():
    history = [memory("64Mi", "128Mi", at=-30), scale(3, 5, at=-25), memory("128Mi", "64Mi", at=-20),
               scale(5, 6, at=-10)]
    proposed = memory("64Mi", "128Mi")
    finding = detect(proposed, *history)
    assert finding.triggered
    assert finding.summary == (
        "2 direction reversals of app memory limit in 30m (64Mi→128Mi→64Mi→128Mi); "
        "4 alternations between scale and resource changes in 30m"
    )
    assert uids(finding.evidence) == uids([*history, proposed])
    assert finding.severity is Severity.HIGH


def test_other_actions_are_neither_class():
    assert detect(action("restart_pod"), scale(3, 5, at=-20), memory("64Mi", "128Mi", at=-15)) is None


# --- the alternative ------------------------------------------------------------------------

def triggered_with(effectiveness):
    history = [memory("64Mi", "128Mi", at=-35), memory("128Mi", "64Mi", at=-20)]
    return detect(memory("64Mi", "128Mi"), *history, target_effectiveness=effectiveness)


def test_alternative_is_the_best_other_action_type_ties_alphabetical():
    finding = triggered_with({"increase_resources": 0.9, "scale_deployment": 0.6, "restart_pod": 0.6, "rollback": 0.2})
    assert finding.alternative == "restart_pod"


def test_no_alternative_when_nothing_else_was_assessed():
    assert triggered_with({}).alternative is None
    assert triggered_with({"increase_resources": 0.9}).alternative is None


# --- properties -----------------------------------------------------------------------------

DIMENSIONS = [("app", "memory", "limits"), ("app", "memory", "requests"), ("app", "cpu", "requests"),
              ("sidecar", "memory", "limits")]


@st.composite
def monotonic_resource_changes(draw):
    """Resource-only events; each dimension keeps one direction throughout (dimensions may differ)."""
    direction = {dim: draw(st.sampled_from([1, -1])) for dim in DIMENSIONS}
    value = dict.fromkeys(DIMENSIONS, 1000.0)
    count = draw(st.integers(min_value=1, max_value=12))
    offsets = sorted(draw(st.lists(st.floats(min_value=-89.9, max_value=0), min_size=count, max_size=count)))
    events = []
    for offset in offsets:
        moved = draw(st.lists(st.sampled_from(DIMENSIONS), min_size=1, max_size=3, unique=True))
        changes = []
        for dim in moved:
            step = draw(st.integers(min_value=1, max_value=100))
            before = value[dim]
            value[dim] = before + direction[dim] * step
            changes.append(ResourceChange(*dim, before=before, after=value[dim]))
        events.append(resources(changes=changes, at=offset, actor=draw(st.sampled_from([AGENT, HPA]))))
    return events


@given(monotonic_resource_changes())
def test_property_monotonic_resource_changes_never_trigger(events):
    *history, proposed = events
    finding = detect(proposed, *history)
    assert finding is None  # not even a near miss: the proposed change never turns back
