"""cascading-failure (DESIGN §4): one actor on ≥5 workloads in a namespace, or ≥20 cluster-wide, in 15m."""

from __future__ import annotations

import random

import hypothesis.strategies as st
from hypothesis import given

from webhook.detection import cascading_failure
from webhook.detection.situation import Reach, Severity
from webhook.policy.model import PatternType

from .factories import AGENT, HPA, OTHER_AGENT, action, minutes, policy, situation, target, uids

POLICY = policy(PatternType.CASCADING_FAILURE)


def detect(proposed, *actor_history, policy=POLICY, **kwargs):
    return cascading_failure.detect(situation(proposed, actor_history=actor_history, **kwargs), policy)


def touch(name, at=0, *, namespace="shop", actor=AGENT):
    return action("restart_pod", at=at, actor=actor, on=target(name, namespace))


def test_five_deployments_in_one_namespace_in_15m():
    history = [touch(f"d{index}", at=-12 + index) for index in range(4)]
    proposed = touch("d4")
    finding = detect(proposed, *history)
    assert finding is not None and finding.triggered
    assert finding.scope == Reach.of_namespace("shop")
    assert finding.severity is Severity.HIGH
    assert finding.summary == "5 workloads in namespace shop changed by system:serviceaccount:ops:agent in 12m"
    assert uids(finding.evidence) == uids([*history, proposed])
    assert finding.confidence == 0.5


def test_four_are_a_near_miss():
    finding = detect(touch("d3"), *[touch(f"d{index}", at=-10 + index) for index in range(3)])
    assert finding is not None and not finding.triggered
    assert finding.scope == Reach.of_namespace("shop")
    assert finding.summary.startswith("4 workloads in namespace shop")


def test_three_are_nothing():
    assert detect(touch("d2"), touch("d0", at=-5), touch("d1", at=-4)) is None


def test_a_workload_counts_once():
    history = [touch("d0", at=-10), touch("d0", at=-9), touch("d1", at=-8), touch("d1", at=-7), touch("d2", at=-6)]
    finding = detect(touch("d2"), *history)
    assert finding is None or not finding.triggered


def test_the_proposed_target_counts_even_if_new_and_is_not_counted_twice():
    history = [touch(f"d{index}", at=-10 + index) for index in range(4)]
    assert detect(touch("new"), *history).triggered
    finding = detect(touch("d0"), *history)
    assert not finding.triggered
    assert len(finding.evidence) == 4 and finding.evidence[-1].target.name == "d0"


def test_other_namespaces_do_not_count_for_the_namespace():
    history = [touch(f"d{index}", at=-10 + index, namespace="other") for index in range(4)]
    assert detect(touch("d4"), *history) is None


def test_events_by_other_actors_are_ignored():
    history = [touch(f"d{index}", at=-10 + index, actor=actor)
               for index, actor in enumerate([AGENT, HPA, OTHER_AGENT, AGENT])]
    finding = detect(touch("d4"), *history)
    assert finding is None  # the agent itself touched 3 workloads


def test_events_without_target_are_skipped():
    history = [touch(f"d{index}", at=-10 + index) for index in range(3)]
    history.append(action("restart_pod", at=-2, on=None))
    assert not detect(touch("d4"), *history).triggered
    assert detect(action("restart_pod", on=None), *history) is None


def test_window_is_15m_exclusive_of_its_start():
    history = [touch("d0", at=-15)] + [touch(f"d{index}", at=-10 + index) for index in range(1, 4)]
    assert not detect(touch("d4"), *history).triggered
    history[0] = touch("d0", at=-14.9)
    assert detect(touch("d4"), *history).triggered


def test_twenty_workloads_across_namespaces_are_critical_cluster_wide():
    history = [touch(f"d{index}", at=-14 + index * 0.5, namespace=f"ns{index % 4}") for index in range(19)]
    proposed = touch("d19", namespace="ns3")
    finding = detect(proposed, *history)
    assert finding.triggered and finding.scope == Reach.CLUSTER
    assert finding.severity is Severity.CRITICAL
    assert finding.summary == "20 workloads in 4 namespaces changed by system:serviceaccount:ops:agent in 14m"
    assert len(finding.evidence) == 20 and finding.evidence[-1] is proposed


def test_nineteen_across_namespaces_are_a_cluster_near_miss():
    history = [touch(f"d{index}", at=-14 + index * 0.5, namespace=f"ns{index}") for index in range(18)]
    finding = detect(touch("d18", namespace="ns18"), *history)
    assert finding is not None and not finding.triggered
    assert finding.scope == Reach.CLUSTER


def test_cluster_wins_over_namespace():
    history = [touch(f"d{index}", at=-14 + index * 0.5, namespace="shop" if index < 6 else f"ns{index}")
               for index in range(19)]
    finding = detect(touch("d19"), *history)
    assert finding.scope == Reach.CLUSTER


def test_namespace_threshold_overrides_min_occurrences():
    history = [touch(f"d{index}", at=-10 + index) for index in range(2)]
    three = policy(PatternType.CASCADING_FAILURE, min_occurrences=3, without=["namespaceWorkloads"])
    assert detect(touch("d2"), *history, policy=three).triggered
    overridden = policy(PatternType.CASCADING_FAILURE, min_occurrences=3, thresholds={"namespaceWorkloads": 4})
    near = detect(touch("d2"), *history, policy=overridden)
    assert near is not None and not near.triggered


def test_a_reset_forgets_earlier_events():
    history = [touch(f"d{index}", at=-12 + index) for index in range(4)]
    assert detect(touch("d4"), *history).triggered
    finding = detect(touch("d4"), *history, resets={PatternType.CASCADING_FAILURE: minutes(-12)})
    assert finding is not None and not finding.triggered
    assert detect(touch("d4"), *history, resets={PatternType.CASCADING_FAILURE: minutes(-11)}) is None


# --- properties -----------------------------------------------------------------------------

@st.composite
def actor_histories(draw):
    """The agent's events on workloads in a few namespaces, plus other actors' events (to be ignored)."""
    names = st.sampled_from([f"w{index}" for index in range(25)])
    namespaces = st.sampled_from(["shop", "pay", "ops"])
    events = [
        touch(draw(names), at=draw(st.floats(min_value=-14.9, max_value=0)), namespace=draw(namespaces),
              actor=draw(st.sampled_from([AGENT, AGENT, HPA, OTHER_AGENT])))
        for _ in range(draw(st.integers(min_value=0, max_value=40)))
    ]
    return sorted(events, key=lambda event: event.at)


def verdict(finding):
    if finding is None:
        return None
    return finding.triggered, finding.scope, finding.severity, len(finding.evidence)


@given(actor_histories(), st.randoms(use_true_random=False))
def test_property_order_of_other_targets_events_does_not_change_the_verdict(history, rnd: random.Random):
    proposed = touch("w0")
    shuffled = list(history)
    rnd.shuffle(shuffled)
    mine = [event for event in history if event.actor == AGENT]
    expected = verdict(detect(proposed, *mine))
    assert verdict(detect(proposed, *history)) == expected
    assert verdict(detect(proposed, *shuffled)) == expected
