"""Cluster-scoped targets (issue 13, item 5): ``Node/worker-1`` and Kubernaut's ``node/worker-1``
are tracked like namespaced ones; their alerts and summaries live in the gate's namespace."""

from __future__ import annotations

import datetime

from tests.unit.detection.factories import NOW, minutes
from tests.unit.kube.test_kubernaut_context import proposal_of
from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.admission.extract import Proposal
from webhook.decision import GateState, Outcome, decide
from webhook.detection.situation import Situation
from webhook.kube.alerts import alert_spec
from webhook.policy.actors import ActorRules
from webhook.policy.defaults import default_policies
from webhook.summaries.targets import TargetFacts, target_summary

NODE = TargetRef(namespace="", kind="Node", name="worker-1")
KUBERNAUT = "system:serviceaccount:kubernaut-system:workflowexecution-controller"


def test_both_forms_parse_and_the_three_part_form_is_unchanged():
    assert TargetRef.parse("Node/worker-1") == NODE
    assert TargetRef.parse(" node / worker-1 ") == TargetRef(namespace="", kind="node", name="worker-1")
    assert TargetRef.parse("shop/Deployment/cart") == TargetRef(namespace="shop", kind="Deployment", name="cart")
    for malformed in ("", "worker-1", "Node/", "/worker-1", "a/b/c/d", "shop//cart"):
        assert TargetRef.parse(malformed) is None, malformed
    assert NODE.cluster_scoped and NODE.display == "Node worker-1" and NODE.key == "/Node/worker-1"
    assert NODE.home("safety-gate") == "safety-gate"
    assert TargetRef.parse("shop/Deployment/cart").home("safety-gate") == "shop"


def test_a_kubernaut_pipelinerun_on_a_node_has_a_node_target():
    obj = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
           "metadata": {"name": "wfe-0123456789abcdef", "namespace": "kubernaut-workflows",
                        "labels": {"kubernaut.ai/workflow-id": "wf-drain",
                                   "kubernaut.ai/target-resource": "node__worker-1"}},
           "spec": {"pipelineRef": {"resolver": "bundles"}}}
    assert proposal_of(obj).event.target == TargetRef(namespace="", kind="Node", name="worker-1")  # from the label
    obj["spec"]["params"] = [{"name": "TARGET_RESOURCE", "value": "node/worker-1"}]
    assert proposal_of(obj).event.target == TargetRef(namespace="", kind="Node", name="worker-1")


def run(at: float, uid: str) -> ActionEvent:
    return ActionEvent(uid=uid, at=minutes(at), target=NODE, action_type="wf-drain", actor=KUBERNAUT,
                       actor_class=ActorClass.AUTOMATION, remediation="wf-drain")


def test_an_escalation_on_a_node_names_an_alert_in_the_gate_s_namespace():
    proposed = run(0, "p")
    situation = Situation(proposed=proposed, now=NOW, history=[run(-90, "a"), run(-60, "b"), run(-30, "c")])
    proposal = Proposal(event=proposed, username=KUBERNAUT, groups=(), dry_run=False, labels=None)
    policies = {p.pattern: p for p in default_policies()}
    decision = decide(proposal=proposal, situation=situation, policies=policies, state=GateState(),
                      rules=ActorRules(), cluster_namespace="safety-gate")
    assert decision.outcome is Outcome.DENY and decision.code == 403
    assert "ineffective-loop on Node worker-1" in decision.message
    assert "see oscillationalert safety-gate/node-worker-1-ineffective-loop" in decision.message
    assert decision.alert is not None and decision.alert.namespace == "safety-gate"
    spec = alert_spec(decision.alert, cluster_id="c1")
    assert spec["targetRef"] == {"apiVersion": "v1", "kind": "Node", "name": "worker-1"}
    assert spec["target"] == "Node/worker-1"


def test_a_node_s_summary_lives_in_the_gate_s_namespace():
    at = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
    summary = target_summary(TargetFacts(target=NODE, total_actions=2, last_action_at=at), cluster_id="c1",
                             cluster_namespace="safety-gate")
    assert summary["metadata"]["namespace"] == "safety-gate"
    assert summary["spec"]["targetRef"] == {"apiVersion": "v1", "kind": "Node", "name": "worker-1"}
