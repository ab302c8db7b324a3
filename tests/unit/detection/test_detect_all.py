"""detect_all: every pattern with a policy, ordered strongest first; unrelated events change nothing."""

from __future__ import annotations

import dataclasses
import random

import hypothesis.strategies as st
from hypothesis import given, settings

from webhook.detection import DETECTORS, detect_all
from webhook.detection.situation import Severity
from webhook.policy.model import PatternType

from .factories import (
    AGENT,
    CART,
    HPA,
    OTHER_AGENT,
    action,
    policies,
    resources,
    scale,
    situation,
    target,
)

POLICIES = policies()


def patterns(findings):
    return [(finding.pattern, finding.triggered) for finding in findings]


def test_every_pattern_has_a_detector():
    assert set(DETECTORS) == set(PatternType)


def test_hpa_fight_is_named_before_the_oscillation_and_near_misses_come_last():
    history = [scale(3, 5, at=-8), scale(5, 3, at=-4, actor=HPA)]
    others = [action("restart_pod", at=-3, on=target(f"d{index}")) for index in range(3)]
    findings = detect_all(situation(scale(3, 5), history, actor_history=[history[0], *others]), POLICIES)
    assert patterns(findings) == [
        (PatternType.CONTROLLER_FIGHT, True),      # block-action
        (PatternType.SCALE_OSCILLATION, True),     # cooling-period
        (PatternType.CASCADING_FAILURE, False),    # near miss: 4 workloads in shop
    ]


def test_escalation_first_then_severity_within_a_strategy():
    oom = dict(alert_name="KubePodOOMKilled")
    history = [scale(3, 5, at=-8, action_type="increase_resources", **oom),
               scale(5, 3, at=-4, actor=HPA, action_type="increase_resources", **oom),
               resources("64Mi", "128Mi", at=-3, **oom), resources("128Mi", "64Mi", at=-2, **oom)]
    everywhere = [action("restart_pod", at=-10 + index * 0.1, on=target(f"d{index}", f"ns{index % 5}"))
                  for index in range(19)]
    proposed = scale(3, 5, action_type="increase_resources", **oom)
    findings = detect_all(situation(proposed, history, actor_history=everywhere), POLICIES)
    assert [f.pattern for f in findings if f.triggered][:3] == [
        PatternType.INEFFECTIVE_LOOP,      # escalate-human
        PatternType.CASCADING_FAILURE,     # block-action, critical (cluster)
        PatternType.CONTROLLER_FIGHT,      # block-action, high
    ]
    assert findings[1].severity is Severity.CRITICAL


def test_only_patterns_with_a_policy_run():
    history = [scale(3, 5, at=-8), scale(5, 3, at=-4, actor=HPA)]
    only = {PatternType.SCALE_OSCILLATION: POLICIES[PatternType.SCALE_OSCILLATION]}
    assert patterns(detect_all(situation(scale(3, 5), history), only)) == [(PatternType.SCALE_OSCILLATION, True)]
    assert detect_all(situation(scale(3, 5), history), {}) == []


def test_events_of_other_targets_in_the_history_are_ignored():
    elsewhere = target("payments")
    history = [scale(3, 5, at=-30), scale(5, 3, at=-20, on=elsewhere), scale(3, 5, at=-15, on=elsewhere)]
    findings = detect_all(situation(scale(5, 3), history), POLICIES)
    assert patterns(findings) == [(PatternType.SCALE_OSCILLATION, False)]  # one reversal, not three
    assert findings[0].summary == "1 direction reversal in 30m (3→5→3)"


# --- property: unrelated events do not change a verdict ---------------------------------------

ACTORS = [AGENT, OTHER_AGENT, HPA]
# Same name in another namespace, same name and namespace but another kind, and plain neighbours.
OTHER_TARGETS = [target("cart", "other-ns"), target("cart", "shop", "StatefulSet"), target("db", "pay"),
                 *(target(f"w{index}") for index in range(6))]


@st.composite
def target_event(draw, at, on):
    actor = draw(st.sampled_from(ACTORS))
    kind = draw(st.sampled_from(["scale", "resource", "action"]))
    alert = draw(st.sampled_from([None, "KubePodOOMKilled"]))
    score = draw(st.sampled_from([None, None, 0.1, 0.5]))
    if kind == "scale":
        before = draw(st.integers(min_value=2, max_value=4))
        after = before + draw(st.sampled_from([-1, 1]))
        return scale(before, after, at=at, actor=actor, on=on, alert_name=alert, effectiveness=score,
                     action_type=draw(st.sampled_from(["scale_deployment", "increase_resources"])))
    if kind == "resource":
        before, after = draw(st.sampled_from([("64Mi", "128Mi"), ("128Mi", "64Mi")]))
        return resources(before, after, at=at, actor=actor, on=on, alert_name=alert, effectiveness=score)
    return action("restart_pod", at=at, actor=actor, on=on, alert_name=alert, effectiveness=score)


@st.composite
def worlds(draw):
    """Events on the target, events elsewhere, and the proposed event, at distinct times."""
    count = draw(st.integers(min_value=0, max_value=30))
    span = draw(st.sampled_from([600, 3600, 3 * 3600]))  # short spans make the 15m and 60m patterns likely
    seconds = draw(st.lists(st.integers(min_value=-span, max_value=-1), min_size=count, max_size=count, unique=True))
    events = []
    for second in sorted(seconds):
        related = draw(st.booleans())
        on = CART if related else draw(st.sampled_from(OTHER_TARGETS))
        events.append(draw(target_event(second / 60, on)))
    proposed = draw(target_event(0, CART))
    proposed = dataclasses.replace(proposed, actor=AGENT)
    return events, proposed


def verdicts(findings):
    return [
        (f.pattern, f.triggered, f.severity, f.scope, f.counterpart, f.alternative, f.summary, f.confidence,
         [e.uid for e in f.evidence])
        for f in findings
    ]


@settings(max_examples=200)
@given(worlds(), st.randoms(use_true_random=False))
def test_property_unrelated_events_do_not_change_any_verdict(world, rnd: random.Random):
    events, proposed = world
    on_target = [event for event in events if event.target == CART]
    by_agent = [event for event in events if event.actor == AGENT]
    baseline = detect_all(situation(proposed, on_target, actor_history=by_agent), POLICIES)

    # The caller's history query filtered by target, but suppose it let everything through:
    # every other target's events interleaved (in time order) with the target's own.
    noisy_history = detect_all(situation(proposed, events, actor_history=by_agent), POLICIES)
    assert verdicts(noisy_history) == verdicts(baseline)

    # For cascading-failure, other targets matter, but only the agent's and in no particular order;
    # other actors' events are unrelated.
    shuffled = list(events)
    rnd.shuffle(shuffled)
    noisy_actor = detect_all(situation(proposed, on_target, actor_history=shuffled), POLICIES)
    assert verdicts(noisy_actor) == verdicts(baseline)
