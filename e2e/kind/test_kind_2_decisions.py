"""The chart's gate pods in the admission path of a real cluster: an agent's scale loop, a fight
with kind's own HorizontalPodAutoscaler, and a Kubernaut-shaped PipelineRun loop escalated to a
person and approved once."""

from __future__ import annotations

import json
import subprocess
import sys

from cluster import TEKTON_CRD, remediation_pipelinerun, wait_for
from kind_helpers import (
    DENIED,
    REPO,
    KindCluster,
    agent_of,
    decisions,
    scale,
    wait_alert,
    workload,
)

HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"


def replicas(cluster: KindCluster, namespace: str, name: str) -> int:
    return cluster.kubectl_json("get", "deployment", name, namespace=namespace)["spec"]["replicas"]


def test_an_agents_scale_loop_is_refused_at_the_second_reversal(kind_cluster: KindCluster, namespace: str):
    agent = agent_of(kind_cluster, namespace)
    kind_cluster.apply(workload("cart", namespace, replicas=3, schedulable=False))

    assert scale(kind_cluster, namespace, "cart", 5, as_user=agent).returncode == 0
    assert scale(kind_cluster, namespace, "cart", 3, as_user=agent).returncode == 0
    refused = scale(kind_cluster, namespace, "cart", 5, as_user=agent)
    assert refused.returncode != 0
    assert DENIED in refused.stderr
    assert f"safety-gate: scale-oscillation on Deployment {namespace}/cart" in refused.stderr
    assert "cooling period until" in refused.stderr
    assert replicas(kind_cluster, namespace, "cart") == 3

    # Decided by the chart's pods from the chart's PostgreSQL: the two changes allowed, then the
    # refusal. (kube-apiserver may run admission twice for one PATCH, again with a fresh object
    # when its cached one was stale: each run is a decision of its own.)
    made = [d["allowed"] for d in decisions(kind_cluster, namespace)]
    allowed, denied = made.count(True), made.count(False)
    assert allowed >= 2 and denied >= 1 and made == [True] * allowed + [False] * denied, made
    assert {d["actor"] for d in decisions(kind_cluster, namespace)} == {agent}
    alert = wait_alert(kind_cluster, namespace, "deployment-cart-scale-oscillation",
                       lambda a: a.get("status", {}).get("deniedRequests") == denied, "the OscillationAlert")
    assert alert["spec"]["actor"] == agent and alert["spec"]["clusterId"] == "default"
    # The evidence is the loop, oldest first. (A change admitted twice by kube-apiserver, see
    # above, is in the history twice today; collapsing such re-admissions is the history's job.)
    evidence = [e["summary"] for e in alert["status"]["evidence"]]
    assert evidence[0] == "replicas 3→5" and evidence[-1] == "replicas 3→5", evidence
    assert set(evidence[1:-1]) == {"replicas 5→3"}, evidence


def test_the_real_hpa_clamping_an_agent_back_is_a_controller_fight(kind_cluster: KindCluster, namespace: str):
    agent = agent_of(kind_cluster, namespace)
    kind_cluster.apply([
        workload("web", namespace, replicas=2, schedulable=False),
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "web", "namespace": namespace},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                  "minReplicas": 1, "maxReplicas": 3,
                  "metrics": [{"type": "Resource", "resource": {
                      "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}},
    ])
    assert scale(kind_cluster, namespace, "web", 5, as_user=agent).returncode == 0
    # kube-controller-manager's HPA clamps it to maxReplicas (no metrics needed for that).
    wait_for(lambda: replicas(kind_cluster, namespace, "web") == 3, timeout=180, interval=1,
             description="the HPA clamping web back to maxReplicas=3")
    wait_for(lambda: any(d["actor"] == HPA_USER and d["allowed"] for d in decisions(kind_cluster, namespace)),
             timeout=30, interval=0.5, description="the HPA's change recorded by the gate")

    fight = scale(kind_cluster, namespace, "web", 5, as_user=agent)
    assert fight.returncode != 0
    assert DENIED in fight.stderr
    assert "controller-fight" in fight.stderr and HPA_USER in fight.stderr
    assert f"HorizontalPodAutoscaler {namespace}/web" in fight.stderr, fight.stderr
    assert replicas(kind_cluster, namespace, "web") == 3
    alert = wait_alert(kind_cluster, namespace, "deployment-web-controller-fight",
                       lambda a: a.get("status", {}).get("phase") == "Active", "the controller-fight alert")
    assert alert["spec"]["strategy"] == "block-action"
    assert not any(d["actor"] == HPA_USER and not d["allowed"] for d in decisions(kind_cluster, namespace))


def test_a_pipelinerun_loop_is_escalated_then_approved_once(kind_cluster: KindCluster, namespace: str):
    kind_cluster.install_crds([TEKTON_CRD])
    agent = agent_of(kind_cluster, namespace)
    kind_cluster.apply(workload("cart", namespace, schedulable=False))
    run = json.dumps(remediation_pipelinerun(namespace, target=f"{namespace}/Deployment/cart",
                                             alert="KubePodCrashLooping"))

    def create():
        return kind_cluster.kubectl("create", "-f", "-", input=run, namespace=namespace, as_user=agent)

    for _ in range(3):
        res = create()
        assert res.returncode == 0, res.stderr
    refused = create()
    assert refused.returncode != 0 and DENIED in refused.stderr
    assert "safety-gate: ineffective-loop" in refused.stderr, refused.stderr
    alert_name = "deployment-cart-ineffective-loop"
    alert = wait_alert(kind_cluster, namespace, alert_name,
                       lambda a: a.get("status", {}).get("phase") == "PendingApproval", "the escalation")
    assert alert["spec"]["strategy"] == "escalate-human"

    # A person approves with the CLI, through the API server; the gate's pods pick it up. The approval
    # records who the cluster authenticates (SelfSubjectReview), here kind's admin.
    approver = kind_cluster.kubectl_json("auth", "whoami")["status"]["userInfo"]["username"]
    approve = subprocess.run(
        [sys.executable, "-m", "webhook", "approve", f"{namespace}/{alert_name}", "--reason", "restart once more",
         "--kubeconfig", str(kind_cluster.kubeconfig)],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert approve.returncode == 0, approve.stdout + approve.stderr
    wait_for(lambda: kind_cluster.count(
        "SELECT count(*) FROM oscillation_detections WHERE alert_namespace = "
        f"'{namespace}' AND alert_name = '{alert_name}' AND approved_by = '{approver}'") == 1,
        timeout=60, interval=0.5, description="the approval synced into the chart's PostgreSQL")

    admitted = create()
    assert admitted.returncode == 0, admitted.stderr
    assert f"allowed once by the approval of {approver}" in admitted.stderr
    again = create()
    assert again.returncode != 0 and "safety-gate: ineffective-loop" in again.stderr
    assert len(kind_cluster.kubectl_json("get", "pr", namespace=namespace)["items"]) == 4
    wait_alert(kind_cluster, namespace, alert_name, lambda a: a["status"].get("approvalUsedBy") == agent,
               "the used approval recorded on the alert")
