"""The chart's gate pods in the admission path of a real cluster: an agent's scale loop, a fight
with kind's own HorizontalPodAutoscaler, a Kubernaut-shaped PipelineRun loop escalated to a
person and approved once, and two of the seed's other actions: an agent's pod restarts of one
Deployment (restart_pod) and its cordons of the node (drain_node)."""

from __future__ import annotations

import json
import subprocess
import sys

from cluster import TEKTON_CRD, fresh_pod, remediation_pipelinerun, wait_for
from kind_helpers import (
    DENIED,
    NAMESPACE,
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


def pod_rights(cluster: KindCluster, agent: str, namespace: str) -> None:
    """What an agent that restarts pods holds: read and delete its namespace's pods."""
    name = agent.rsplit(":", 1)[-1]
    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "restarter", "namespace": namespace},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "restarter", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "restarter"},
         "subjects": [{"kind": "ServiceAccount", "namespace": namespace, "name": name}]},
    ])


def live_pod(cluster, namespace: str, app: str, *, other_than: set[str]) -> str:
    return fresh_pod(cluster, namespace, app, other_than=other_than, timeout=60, interval=0.5)


def test_an_agents_fourth_pod_restart_of_one_deployment_within_the_hour_is_escalated(
        kind_cluster: KindCluster, namespace: str):
    """restart_pod (DESIGN §4): three earlier restarts of one workload's pods within 1h, unassessed,
    and the next is refused 403 for a person (escalate-human), judged on the owning Deployment."""
    agent = agent_of(kind_cluster, namespace)
    pod_rights(kind_cluster, agent, namespace)
    kind_cluster.apply(workload("api", namespace, schedulable=False))
    seen: set[str] = set()
    for _ in range(3):
        pod = live_pod(kind_cluster, namespace, "api", other_than=seen)
        seen.add(pod)
        res = kind_cluster.kubectl("delete", "pod", pod, "--wait=false", namespace=namespace, as_user=agent)
        assert res.returncode == 0, res.stderr
    pod = live_pod(kind_cluster, namespace, "api", other_than=seen)
    refused = kind_cluster.kubectl("delete", "pod", pod, "--wait=false", namespace=namespace, as_user=agent)
    assert refused.returncode != 0 and DENIED in refused.stderr, refused.stderr
    assert f"safety-gate: restart-storm on Deployment {namespace}/api: 3 earlier pod restarts" in refused.stderr, \
        refused.stderr
    assert f"safety-gate approve {namespace}/deployment-api-restart-storm" in refused.stderr
    assert kind_cluster.kubectl_json("get", "pod", pod, namespace=namespace)["metadata"]["name"] == pod  # still there
    alert = wait_alert(kind_cluster, namespace, "deployment-api-restart-storm",
                       lambda a: a.get("status", {}).get("phase") == "PendingApproval", "the restart-storm escalation")
    assert alert["spec"]["strategy"] == "escalate-human" and alert["spec"]["actor"] == agent
    # The three restarts admitted, then the refusal (each admission run is a decision of its own).
    made = [(d["allowed"], d["pattern"]) for d in decisions(kind_cluster, namespace) if d["actor"] == agent]
    flags = [ok for ok, _ in made]
    allowed, denied = flags.count(True), flags.count(False)
    assert allowed >= 3 and denied >= 1 and flags == [True] * allowed + [False] * denied, made
    assert {pattern for ok, pattern in made if not ok} == {"restart-storm"}, made


def test_an_agents_cordon_uncordon_cordon_of_the_node_is_refused_429_on_the_third(
        kind_cluster: KindCluster, namespace: str):
    """drain_node (DESIGN §4): a node's schedulability reversed twice by an agent; the third change
    starts a 30m cooling period. The node is kind's own, so the admin uncordons it in any case
    (a person: warned, never refused)."""
    node = kind_cluster.kubectl_json("get", "nodes")["items"][0]["metadata"]["name"]
    agent = agent_of(kind_cluster, namespace)
    role = f"cordon-{namespace}"
    kind_cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": [{"kind": "ServiceAccount", "namespace": namespace, "name": "agent"}]},
    ])
    try:
        for verb in ("cordon", "uncordon"):
            res = kind_cluster.kubectl(verb, node, as_user=agent)
            assert res.returncode == 0, res.stderr
        refused = kind_cluster.kubectl("cordon", node, as_user=agent)  # kubectl cordon exits 0 even so
        assert DENIED in refused.stderr, refused.stderr
        assert f"safety-gate: schedulability-oscillation on Node {node}" in refused.stderr, refused.stderr
        assert "cooling period until" in refused.stderr
        assert f"oscillationalert {NAMESPACE}/node-{node}-schedulability-oscillation" in refused.stderr
        assert kind_cluster.kubectl_json("get", "node", node).get("spec", {}).get("unschedulable") is not True
        answers = json.loads(kind_cluster.psql(
            "SELECT coalesce(json_agg(d ORDER BY decided_at), '[]') FROM (SELECT allowed, pattern, outcome, "
            f"action_type, decided_at FROM admission_decisions WHERE name = '{node}' AND actor = '{agent}') d"))
        flags = [a["allowed"] for a in answers]
        allowed, denied = flags.count(True), flags.count(False)
        assert allowed >= 2 and denied >= 1 and flags == [True] * allowed + [False] * denied, answers
        assert {a["pattern"] for a in answers if not a["allowed"]} == {"schedulability-oscillation"}, answers
    finally:
        kind_cluster.kubectl("uncordon", node)
        kind_cluster.kubectl("delete", "clusterrolebinding,clusterrole", role)
