"""Kubernaut as it really is (issue 13): PipelineRuns shaped exactly as Kubernaut's WorkflowExecution
controller builds them, with their WorkflowExecution and RemediationRequest in the cluster.

Kubernaut names every run on one target ``wfe-<sha256(target)[:16]>`` and deletes the previous run
before it creates the next; the run carries no alert name, a bundle-resolved pipelineRef without a
name, and the target as a param, an annotation and a label. The gate reads the business context
from the WorkflowExecution the run names and its RemediationRequest.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid

from cluster import (
    GATE_NAMESPACE,
    ControlPlane,
    deployment,
    grant_remediation_rights,
    oscillation_alert,
    service_account,
    wait_for,
)

KUBERNAUT = service_account("kubernaut-system", "workflowexecution-controller")
SIGNAL = "KubePodCrashLooping"


def kubernaut_pipelinerun(*, workflows: str, source: str, execution: str, workflow_id: str, target: str) -> dict:
    """What Kubernaut v1.6's BuildPipelineRun creates, field for field (without its pod template)."""
    return {
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {
            "name": "wfe-" + hashlib.sha256(target.encode()).hexdigest()[:16],
            "namespace": workflows,
            "labels": {"kubernaut.ai/workflow-execution": execution, "kubernaut.ai/workflow-id": workflow_id,
                       "kubernaut.ai/target-resource": target.replace("/", "__")[:63],
                       "kubernaut.ai/source-namespace": source},
            "annotations": {"kubernaut.ai/target-resource": target},
        },
        "spec": {
            "pipelineRef": {"resolver": "bundles", "params": [
                {"name": "bundle", "value": "quay.io/kubernaut-cookbook/restart-pod@sha256:" + "0" * 64},
                {"name": "name", "value": "workflow"}, {"name": "kind", "value": "pipeline"}]},
            "params": [{"name": "NAMESPACE", "value": target.split("/")[0]},
                       {"name": "TARGET_RESOURCE", "value": target}],
            "taskRunTemplate": {"serviceAccountName": "kubernaut-workflow-runner"},
        },
    }


def business_objects(*, source: str, index: int, workflow_id: str, target: str, action_type: str | None) -> list:
    workflow_ref = {"workflowId": workflow_id, "version": "1.0.0",
                    "executionBundle": "quay.io/kubernaut-cookbook/restart-pod@sha256:" + "0" * 64}
    if action_type:
        workflow_ref["actionType"] = action_type
    rr, we = f"rr-cart-{index}", f"we-cart-{index}"
    return [
        {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest",
         "metadata": {"name": rr, "namespace": source},
         "spec": {"signalFingerprint": hashlib.sha256(f"{target}{index}".encode()).hexdigest(), "signalName": SIGNAL,
                  "severity": "critical", "signalType": "alert", "targetType": "kubernetes",
                  "targetResource": {"kind": "Deployment", "name": "cart", "namespace": target.split("/")[0]}}},
        {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "WorkflowExecution",
         "metadata": {"name": we, "namespace": source},
         "spec": {"remediationRequestRef": {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest",
                                            "name": rr, "namespace": source},
                  "workflowRef": workflow_ref, "targetResource": target}},
    ]


class Kubernaut:
    """Kubernaut's side of one test: its namespaces, its RBAC, and one WorkflowExecution per run."""

    def __init__(self, cluster: ControlPlane, namespace: str, *, with_business_objects: bool = True,
                 action_type: str | None = "RestartPod", target: str | None = None) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.cluster = cluster
        self.workflows = cluster.create_namespace(f"kn-workflows-{suffix}")  # kubernaut-workflows
        self.source = cluster.create_namespace(f"kn-system-{suffix}")        # kubernaut-system
        self.target = target or f"{namespace}/deployment/cart"                # Kubernaut's own form
        self.workflow_id = str(uuid.uuid4())
        self.with_business_objects = with_business_objects
        self.action_type = action_type
        self.runs = 0
        grant_remediation_rights(cluster, self.workflows, subjects=[KUBERNAUT])

    def run(self):
        """Delete the previous run (as Kubernaut does, by its fixed name) and create the next."""
        self.runs += 1
        execution = f"we-cart-{self.runs}"
        if self.with_business_objects:
            self.cluster.apply(business_objects(source=self.source, index=self.runs, workflow_id=self.workflow_id,
                                                target=self.target, action_type=self.action_type))
        run = kubernaut_pipelinerun(workflows=self.workflows, source=self.source, execution=execution,
                                    workflow_id=self.workflow_id, target=self.target)
        self.cluster.kubectl("delete", "pipelinerun", run["metadata"]["name"], "--ignore-not-found", "--wait=false",
                             namespace=self.workflows, check=True)
        wait_for(lambda: self.cluster.kubectl("get", "pipelinerun", run["metadata"]["name"],
                                              namespace=self.workflows).returncode != 0,
                 timeout=30, interval=0.1, description="the previous run deleted")
        return self.cluster.kubectl("create", "-f", "-", input=json.dumps(run), namespace=self.workflows,
                                    as_user=KUBERNAUT)


def recorded(gate, namespace: str) -> list[dict]:
    return gate.sql("SELECT action_type, actor, alert_name, correlation_id, event->>'remediation' AS remediation "
                    "FROM resource_action_traces WHERE namespace = $1 AND name = 'cart' ORDER BY action_timestamp",
                    namespace)


def alert_of(refusal: str, namespace: str) -> str:
    found = re.search(rf"see oscillationalert {re.escape(namespace)}/([a-z0-9.-]+)", refusal)
    assert found, refusal
    return found.group(1).rstrip(".")


def test_the_same_workflow_on_one_target_is_escalated_then_approved_once(cluster: ControlPlane, gate,
                                                                         namespace: str):
    cluster.apply(deployment("cart", namespace))
    kubernaut = Kubernaut(cluster, namespace)

    for _ in range(3):  # each run unassessed, and Kubernaut tried again: each one was ineffective
        res = kubernaut.run()
        assert res.returncode == 0, res.stderr
    refused = kubernaut.run()
    assert refused.returncode != 0
    assert "(Forbidden)" in refused.stderr and "safety-gate: ineffective-loop" in refused.stderr, refused.stderr
    assert "RestartPod" in refused.stderr and SIGNAL in refused.stderr  # read from the business CRDs

    # What the history says of the three admitted runs: the WorkflowExecution's action type, the
    # RemediationRequest's signal as the alert and its name as the correlation id, the workflow id.
    rows = recorded(gate, namespace)
    assert [(r["action_type"], r["actor"], r["alert_name"], r["remediation"]) for r in rows] == [
        ("RestartPod", KUBERNAUT, SIGNAL, kubernaut.workflow_id)] * 3
    assert [r["correlation_id"] for r in rows] == ["rr-cart-1", "rr-cart-2", "rr-cart-3"]

    alert = alert_of(refused.stderr, namespace)
    wait_for(lambda: (oscillation_alert(cluster, namespace, alert) or {}).get("status", {}).get("phase")
             == "PendingApproval", timeout=30, interval=0.2, description="the escalation alert")
    approver = cluster.kubectl_json("auth", "whoami")["status"]["userInfo"]["username"]
    # In someone else's name: refused before anything is written (bad input, exit 2).
    forged = gate.cli("approve", f"{namespace}/{alert}", "--reason", "x", "--approved-by", "oncall@example.com",
                      "--kubeconfig", str(cluster.kubeconfig))
    assert forged.returncode == 2 and f"the cluster authenticates you as '{approver}'" in forged.stderr + forged.stdout
    assert "approval" not in oscillation_alert(cluster, namespace, alert)["spec"]
    approved = gate.cli("approve", f"{namespace}/{alert}", "--reason", "the image fix is rolling out; one more restart",
                        "--kubeconfig", str(cluster.kubeconfig), check=True)
    assert f"as {approver}" in approved.stdout
    wait_for(lambda: gate.count("SELECT count(*) FROM oscillation_detections WHERE alert_namespace = $1"
                                " AND alert_name = $2 AND approved_by = $3", namespace, alert, approver),
             timeout=30, interval=0.2, description="the approval synced into PostgreSQL")

    admitted = kubernaut.run()
    assert admitted.returncode == 0, admitted.stderr
    assert f"allowed once by the approval of {approver}" in admitted.stderr
    again = kubernaut.run()
    assert again.returncode != 0 and "safety-gate: ineffective-loop" in again.stderr, again.stderr
    assert len(recorded(gate, namespace)) == 4


def test_without_its_workflowexecution_the_workflow_id_stands_for_the_remediation(cluster: ControlPlane, gate,
                                                                                 namespace: str):
    cluster.apply(deployment("cart", namespace))
    kubernaut = Kubernaut(cluster, namespace, with_business_objects=False)

    for _ in range(3):
        res = kubernaut.run()
        assert res.returncode == 0, res.stderr
    refused = kubernaut.run()
    assert refused.returncode != 0 and "safety-gate: ineffective-loop" in refused.stderr, refused.stderr
    assert kubernaut.workflow_id in refused.stderr
    rows = recorded(gate, namespace)
    assert [(r["action_type"], r["alert_name"], r["remediation"]) for r in rows] == [
        (kubernaut.workflow_id, None, kubernaut.workflow_id)] * 3


def test_an_approval_patched_by_a_person_records_that_person(cluster: ControlPlane, gate, namespace: str):
    cluster.apply(deployment("cart", namespace))
    kubernaut = Kubernaut(cluster, namespace)
    for _ in range(3):
        assert kubernaut.run().returncode == 0
    alert = alert_of(kubernaut.run().stderr, namespace)
    wait_for(lambda: oscillation_alert(cluster, namespace, alert), timeout=30, interval=0.2,
             description="the escalation alert")
    person = "alice@example.com"  # Kubernetes RBAC lets her approve here, nothing else
    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "approver", "namespace": namespace},
         "rules": [{"apiGroups": ["ai.prometheus-alerts-slm.io"], "resources": ["oscillationalerts"],
                    "verbs": ["get", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "approver", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approver"},
         "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": person}]},
    ])

    def approve(approved_by: str):
        patch = {"spec": {"approval": {"approvedBy": approved_by, "reason": "checked the rollout"}}}
        return cluster.kubectl("patch", "oscillationalert", alert, "--type=merge", "-p", json.dumps(patch),
                               namespace=namespace, as_user=person)

    # In someone else's name: the API server refuses it (the policy is loaded asynchronously).
    forged = wait_for(lambda: (lambda r: r if r.returncode != 0 else None)(approve("oncall@example.com")),
                      timeout=30, interval=0.3, description="the approval policy to refuse a forged approver")
    assert f'spec.approval.approvedBy must be "{person}"' in forged.stderr, forged.stderr
    assert "approval" not in oscillation_alert(cluster, namespace, alert)["spec"]

    # In her own name it stands; the gate stamps approvedAt (unchanged approver: allowed) and syncs it.
    mine = approve(person)
    assert mine.returncode == 0, mine.stderr
    wait_for(lambda: gate.count("SELECT count(*) FROM oscillation_detections WHERE alert_namespace = $1"
                                " AND alert_name = $2 AND approved_by = $3", namespace, alert, person),
             timeout=30, interval=0.2, description="the approval synced into PostgreSQL")
    assert oscillation_alert(cluster, namespace, alert)["spec"]["approval"]["approvedAt"].endswith("Z")
    admitted = kubernaut.run()
    assert admitted.returncode == 0 and f"allowed once by the approval of {person}" in admitted.stderr, \
        admitted.stderr


def assess(cluster: ControlPlane, kubernaut: Kubernaut, *, index: int, health: float, alert: float,
           metrics: float) -> None:
    """What Kubernaut's Effectiveness Monitor leaves behind for the index-th remediation: Completed."""
    name = f"ea-rr-cart-{index}"
    cluster.apply({"apiVersion": "kubernaut.ai/v1alpha1", "kind": "EffectivenessAssessment",
                   "metadata": {"name": name, "namespace": kubernaut.source},
                   "spec": {"correlationID": f"rr-cart-{index}", "signalName": SIGNAL,
                            "remediationTarget": {"kind": "Deployment", "name": "cart",
                                                  "namespace": kubernaut.target.split("/")[0]}}})
    status = {"status": {"phase": "Completed", "assessmentReason": "full",
                         "components": {"healthAssessed": True, "healthScore": health, "alertAssessed": True,
                                        "alertScore": alert, "metricsAssessed": True, "metricsScore": metrics}}}
    cluster.kubectl("patch", "effectivenessassessment", name, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status), namespace=kubernaut.source, check=True)


def score_of(gate, namespace: str, correlation_id: str) -> float | None:
    rows = gate.sql("SELECT effectiveness_score::float8 AS score FROM resource_action_traces "
                    "WHERE namespace = $1 AND correlation_id = $2", namespace, correlation_id)
    return round(rows[0]["score"], 4) if rows and rows[0]["score"] is not None else None


def test_kubernaut_s_assessments_are_recorded_a_success_ends_the_loop_and_a_failure_counts(
        cluster: ControlPlane, gate, namespace: str):
    cluster.apply(deployment("cart", namespace))
    kubernaut = Kubernaut(cluster, namespace)
    for _ in range(3):
        assert kubernaut.run().returncode == 0

    # The third run worked: health 1, alert resolved, metrics 0.2 -> 0.40 + 0.35 + 0.05 = 0.8.
    assess(cluster, kubernaut, index=3, health=1.0, alert=1.0, metrics=0.2)
    # (On kind the CRD appeared after the gate started: it probes for it every minute.)
    wait_for(lambda: score_of(gate, namespace, "rr-cart-3") == 0.8, timeout=90, interval=0.3,
             description="the assessment recorded on the third run")
    fourth = kubernaut.run()  # would be the 4th in a row; the effective third ended the loop
    assert fourth.returncode == 0, fourth.stderr

    # The fourth did not: everything 0. It counts, and two more unassessed runs make the loop again.
    assess(cluster, kubernaut, index=4, health=0.0, alert=0.0, metrics=0.0)
    wait_for(lambda: score_of(gate, namespace, "rr-cart-4") == 0.0, timeout=30, interval=0.2,
             description="the failed assessment recorded on the fourth run")
    assert kubernaut.run().returncode == 0
    assert kubernaut.run().returncode == 0
    refused = kubernaut.run()
    assert refused.returncode != 0 and "safety-gate: ineffective-loop" in refused.stderr, refused.stderr
    assert "scores 0, unassessed, unassessed" in refused.stderr, refused.stderr


def test_a_loop_on_a_node_is_tracked_and_its_alert_lives_in_the_gate_s_namespace(cluster: ControlPlane, gate,
                                                                                  namespace: str):
    node = f"worker-{uuid.uuid4().hex[:6]}"  # history is per target: a node of this test's own
    kubernaut = Kubernaut(cluster, namespace, target=f"node/{node}", action_type="DrainNode")
    for _ in range(3):
        res = kubernaut.run()
        assert res.returncode == 0, res.stderr
    refused = kubernaut.run()
    assert refused.returncode != 0 and f"safety-gate: ineffective-loop on Node {node}" in refused.stderr, \
        refused.stderr
    home = getattr(gate, "release_namespace", GATE_NAMESPACE)  # the gate's namespace (kind: the release's)
    alert = alert_of(refused.stderr, home)
    assert alert == f"node-{node}-ineffective-loop"
    found = wait_for(lambda: (lambda a: a if a and a.get("status", {}).get("phase") == "PendingApproval" else None)(
        oscillation_alert(cluster, home, alert)), timeout=30, interval=0.2, description="the node's alert")
    assert found["spec"]["targetRef"] == {"apiVersion": "v1", "kind": "Node", "name": node}
    rows = gate.sql("SELECT namespace, kind, name, action_type FROM resource_action_traces WHERE name = $1", node)
    assert [(r["namespace"], r["kind"], r["action_type"]) for r in rows] == [("", "Node", "DrainNode")] * 3

    gate.cli("approve", f"{home}/{alert}", "--reason", "the node was replaced", "--kubeconfig",
             str(cluster.kubeconfig), check=True)
    approver = cluster.kubectl_json("auth", "whoami")["status"]["userInfo"]["username"]
    wait_for(lambda: gate.count("SELECT count(*) FROM oscillation_detections WHERE alert_namespace = $1"
                                " AND alert_name = $2 AND approved_by = $3", home, alert, approver),
             timeout=30, interval=0.2, description="the approval synced into PostgreSQL")
    admitted = kubernaut.run()
    assert admitted.returncode == 0, admitted.stderr
