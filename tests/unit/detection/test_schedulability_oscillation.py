"""schedulability-oscillation (DESIGN §4): cordon → uncordon → cordon within 2h, the third refused."""

from __future__ import annotations

import dataclasses
import datetime

from tests.unit.detection.factories import AGENT, HPA, NOW, action, minutes, policy, situation, uids
from webhook.actions.model import TargetRef
from webhook.admission.extract import Proposal
from webhook.decision import GateState, Outcome, decide
from webhook.decision.state import Applies, Restriction, TargetScope
from webhook.detection import schedulability_oscillation
from webhook.detection.situation import Severity
from webhook.policy.actors import ActorRules
from webhook.policy.defaults import default_policies
from webhook.policy.model import PatternType, Strategy

NODE = TargetRef(namespace="", kind="Node", name="worker-1", api_version="v1")
POLICY = policy(PatternType.SCHEDULABILITY_OSCILLATION)


def flip(cordon: bool, at: float = 0, **kwargs):
    return action("drain_node", at=at, on=NODE, unschedulable=cordon, **kwargs)


def detect(proposed, *history):
    return schedulability_oscillation.detect(situation(proposed, history), POLICY)


def test_the_third_change_of_cordon_uncordon_cordon_triggers():
    history = [flip(True, -40), flip(False, -20)]
    proposed = flip(True)
    finding = detect(proposed, *history)
    assert finding is not None and finding.triggered
    assert finding.severity is Severity.MEDIUM
    assert finding.summary == "2 direction reversals in 40m (cordon→uncordon→cordon)"
    assert uids(finding.evidence) == uids([*history, proposed])


def test_the_second_is_a_near_miss_and_continuing_is_nothing():
    near = detect(flip(False), flip(True, -20))
    assert near is not None and not near.triggered
    assert detect(flip(True), flip(True, -40), flip(True, -20)) is None
    assert detect(flip(True), flip(True, -200), flip(False, -150)) is None  # outside 2h: nothing to reverse


def test_other_actions_on_the_node_are_not_changes():
    assert detect(action("restart_pod", on=NODE), flip(True, -40), flip(False, -20)) is None


def test_the_decision_is_a_cooling_period_on_cordons_only():
    rules = ActorRules()
    history = [flip(True, -40, actor=HPA), flip(False, -20)]
    event = flip(True).replace(actor=AGENT, actor_class=rules.classify(AGENT, ()))
    proposal = Proposal(event=event, username=AGENT, groups=(), dry_run=False, labels=None)
    policies = {p.pattern: p for p in default_policies()}
    decision = decide(proposal=proposal, situation=situation(event, history), policies=policies,
                      state=GateState(), rules=rules, cluster_namespace="safety-gate")
    assert decision.outcome is Outcome.DENY and decision.code == 429
    assert decision.restriction.applies is Applies.SCHEDULABILITY
    assert decision.restriction.until == minutes(-20) + datetime.timedelta(minutes=30)
    assert decision.alert.namespace == "safety-gate"  # a Node's alerts live in the gate's namespace
    assert "schedulability-oscillation on Node worker-1" in decision.message
    assert decision.restriction.refuses(flip(False, 1), now=NOW)
    assert not decision.restriction.refuses(action("restart_pod", at=1, on=NODE), now=NOW)


def cooling(pattern: PatternType, *, started: float, on: TargetRef = NODE) -> Restriction:
    return Restriction(pattern=pattern, strategy=Strategy.COOLING_PERIOD, scope=TargetScope.of(on),
                       applies=Applies.SCHEDULABILITY, started=minutes(started), until=minutes(started + 30),
                       alert="safety-gate/node-worker-1-schedulability-oscillation", evidence="2 direction reversals")


def judge_flip(state: GateState, policies):
    rules = ActorRules()
    event = flip(True).replace(actor=AGENT, actor_class=rules.classify(AGENT, ()))
    proposal = Proposal(event=event, username=AGENT, groups=(), dry_run=False, labels=None)
    return decide(proposal=proposal, situation=situation(event, [flip(True, -40), flip(False, -20)]),
                  policies=policies, state=state, rules=rules, cluster_namespace="safety-gate")


def test_the_third_cooling_period_on_a_node_within_its_escalate_window_escalates():
    """Scale-oscillation's semantics (DESIGN §4): escalateAfter 3 within escalateWindow 24h."""
    policies = {p.pattern: p for p in default_policies()}
    earlier = [cooling(PatternType.SCHEDULABILITY_OSCILLATION, started=-600),
               cooling(PatternType.SCHEDULABILITY_OSCILLATION, started=-300)]
    state = GateState.remembered(earlier, policies=policies, target=NODE, now=NOW)
    assert state.cooling_periods(PatternType.SCHEDULABILITY_OSCILLATION) == 2
    decision = judge_flip(state, policies)
    assert decision.outcome is Outcome.DENY and decision.code == 403
    assert decision.strategy is Strategy.ESCALATE_HUMAN and decision.alert.phase == "PendingApproval"
    assert "cooling period 3 within 24h" in decision.message
    assert "safety-gate approve safety-gate/node-worker-1-schedulability-oscillation" in decision.message


def test_only_the_node_s_own_cooling_periods_within_its_own_window_count():
    policies = {p.pattern: p for p in default_policies()}
    short = dataclasses.replace(policies[PatternType.SCHEDULABILITY_OSCILLATION],
                                parameters={"cooldownPeriod": "30m", "escalateAfter": "3", "escalateWindow": "8h"})
    other_node = TargetRef(namespace="", kind="Node", name="worker-2", api_version="v1")
    remembered = [
        cooling(PatternType.SCHEDULABILITY_OSCILLATION, started=-600),           # 10h ago: outside 8h
        cooling(PatternType.SCHEDULABILITY_OSCILLATION, started=-300),
        cooling(PatternType.SCALE_OSCILLATION, started=-200),                    # another pattern
        cooling(PatternType.SCHEDULABILITY_OSCILLATION, started=-100, on=other_node),  # another node
    ]
    tuned = {**policies, PatternType.SCHEDULABILITY_OSCILLATION: short}
    state = GateState.remembered(remembered, policies=tuned, target=NODE, now=NOW)
    assert state.recent_cooling_periods == {PatternType.SCHEDULABILITY_OSCILLATION: 1,
                                            PatternType.SCALE_OSCILLATION: 1}
    decision = judge_flip(state, tuned)
    assert decision.code == 429 and decision.strategy is Strategy.COOLING_PERIOD
    # With the default 24h window the 10h-old one counts too: the third escalates.
    assert GateState.remembered(remembered, policies=policies, target=NODE,
                                now=NOW).cooling_periods(PatternType.SCHEDULABILITY_OSCILLATION) == 2
