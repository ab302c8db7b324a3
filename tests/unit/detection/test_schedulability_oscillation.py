"""schedulability-oscillation (DESIGN §4): cordon → uncordon → cordon within 2h, the third refused."""

from __future__ import annotations

import datetime

from tests.unit.detection.factories import AGENT, HPA, NOW, action, minutes, policy, situation, uids
from webhook.actions.model import TargetRef
from webhook.admission.extract import Proposal
from webhook.decision import GateState, Outcome, decide
from webhook.decision.state import Applies
from webhook.detection import schedulability_oscillation
from webhook.detection.situation import Severity
from webhook.policy.actors import ActorRules
from webhook.policy.defaults import default_policies
from webhook.policy.model import PatternType

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
