"""The rest of the seed's actions against the real API server (DESIGN §2, §4): pod restarts by
DELETE and by eviction, judged on the owning Deployment; cordon/uncordon of a Node. The harness
runs the Deployment and ReplicaSet controllers, so the pods exist and are replaced after each
restart (they never run: there is no scheduler or kubelet)."""

from __future__ import annotations

import json

from cluster import GATE_NAMESPACE, ControlPlane, deployment, fresh_pod, service_account, wait_for


def agent_with_pod_rights(cluster: ControlPlane, namespace: str) -> str:
    agent = service_account(namespace, "agent")
    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "restarter", "namespace": namespace},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete", "patch"]},
                   {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "restarter", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "restarter"},
         "subjects": [{"kind": "ServiceAccount", "namespace": namespace, "name": "agent"}]},
    ])
    return agent


def a_pod_of(cluster, namespace: str, app: str, *, other_than: set[str]) -> str:
    return fresh_pod(cluster, namespace, app, other_than=other_than, timeout=30, interval=0.2)


def evict(cluster: ControlPlane, namespace: str, pod: str, *, as_user: str):
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction",
                       "metadata": {"name": pod, "namespace": namespace}})
    return cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
                           "-f", "-", input=body, as_user=as_user)


def test_a_restart_storm_of_one_deployments_pods_is_escalated(cluster: ControlPlane, gate, namespace: str):
    agent = agent_with_pod_rights(cluster, namespace)
    cluster.apply(deployment("cart", namespace))
    seen: set[str] = set()
    for how in ("delete", "evict", "delete"):
        pod = a_pod_of(cluster, namespace, "cart", other_than=seen)
        seen.add(pod)
        if how == "delete":
            res = cluster.kubectl("delete", "pod", pod, "--wait=false", namespace=namespace, as_user=agent)
        else:
            res = evict(cluster, namespace, pod, as_user=agent)
        assert res.returncode == 0, res.stderr
    pod = a_pod_of(cluster, namespace, "cart", other_than=seen)
    refused = evict(cluster, namespace, pod, as_user=agent)  # the eviction's pod is read for its owner
    assert refused.returncode != 0
    assert f"safety-gate: restart-storm on Deployment {namespace}/cart: 3 earlier pod restarts" in refused.stderr, \
        refused.stderr
    assert f"oscillationalert {namespace}/deployment-cart-restart-storm" in refused.stderr
    again = cluster.kubectl("delete", "pod", pod, "--wait=false", namespace=namespace, as_user=agent)
    assert again.returncode != 0 and "restart-storm" in again.stderr
    assert cluster.kubectl_json("get", "pod", pod, namespace=namespace)["metadata"]["name"] == pod  # still there
    rows = gate.sql("SELECT kind, name, object_kind FROM resource_action_traces WHERE namespace = $1 "
                    "AND action_type = 'restart_pod' ORDER BY id", namespace)
    assert [(r["kind"], r["name"]) for r in rows] == [("Deployment", "cart")] * 3
    assert sorted(r["object_kind"] for r in rows) == ["Eviction", "Pod", "Pod"]
    # The ReplicaSet controller's own deletions (a scale-down) never reach the gate's judgement.
    res = cluster.kubectl("scale", "deployment/cart", "--replicas=0", namespace=namespace)
    assert res.returncode == 0, res.stderr
    wait_for(lambda: not cluster.kubectl_json("get", "pods", "-l", "app=cart", namespace=namespace)["items"],
             timeout=30, interval=0.2, description="the scale-down's pod deletions")
    assert gate.count("SELECT count(*) FROM resource_action_traces WHERE namespace = $1 "
                      "AND action_type = 'restart_pod'", namespace) == 3


def test_cordon_uncordon_cordon_is_cooled_on_the_third_change(cluster: ControlPlane, gate, namespace: str):
    node = f"worker-{namespace}"
    agent = service_account(namespace, "agent")
    cluster.apply([
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"cordon-{namespace}"},
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"cordon-{namespace}"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"cordon-{namespace}"},
         "subjects": [{"kind": "ServiceAccount", "namespace": namespace, "name": "agent"}]},
    ])
    try:
        # A label change is not a schedulability change: not an action at all.
        assert cluster.kubectl("label", "node", node, "team=a", as_user=agent).returncode == 0
        for verb in ("cordon", "uncordon"):
            res = cluster.kubectl(verb, node, as_user=agent)
            assert res.returncode == 0, res.stderr
        refused = cluster.kubectl("cordon", node, as_user=agent)  # kubectl cordon exits 0 even so
        assert f'unable to cordon node "{node}"' in refused.stderr, refused.stderr
        assert f"safety-gate: schedulability-oscillation on Node {node}" in refused.stderr, refused.stderr
        assert "cooling period until" in refused.stderr
        assert f"oscillationalert {GATE_NAMESPACE}/node-{node}-schedulability-oscillation" in refused.stderr
        assert cluster.kubectl_json("get", "node", node).get("spec", {}).get("unschedulable") is not True
        assert gate.count("SELECT count(*) FROM resource_action_traces WHERE kind = 'Node' AND name = $1",
                          node) == 2
        decided = gate.sql("SELECT allowed, pattern FROM admission_decisions WHERE name = $1 AND actor = $2 "
                           "ORDER BY decided_at", node, agent)
        assert [(d["allowed"], d["pattern"]) for d in decided] == [
            (True, None), (True, None), (False, "schedulability-oscillation")], decided
        # The cooling period is kept (migration 0008): the next cordon is refused by it, not found anew.
        assert gate.count("SELECT count(*) FROM restrictions WHERE scope = $1 AND applies = 'schedulability'",
                          f"target//Node/{node}") == 1
        assert gate.count("SELECT count(*) FROM dead_letters WHERE strpos(payload, $1) > 0", node) == 0
    finally:
        cluster.kubectl("delete", "node", node, "--wait=false")
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", f"cordon-{namespace}")


def test_evictions_from_a_cordoned_node_are_part_of_the_drain(cluster: ControlPlane, gate, namespace: str):
    node = f"drained-{namespace}"[:63]
    agent = agent_with_pod_rights(cluster, namespace)
    cluster.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}, "spec": {"unschedulable": True}})
    try:
        for index in range(4):  # four pods of one app on the node: a drain, not a restart storm
            cluster.apply({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": f"web-{index}", "namespace": namespace, "labels": {"app": "web"}},
                           "spec": {"nodeName": node, "containers": [{"name": "app",
                                                                      "image": "registry.k8s.io/pause:3.10"}]}})
        for index in range(4):
            res = evict(cluster, namespace, f"web-{index}", as_user=agent)
            assert res.returncode == 0, res.stderr
        rows = gate.sql("SELECT action_type, namespace, kind, name, object_kind FROM resource_action_traces "
                        "WHERE name = $1", node)
        assert [(r["action_type"], r["kind"], r["object_kind"]) for r in rows] == [("drain_node", "Node", "Eviction")] * 4
        assert gate.count("SELECT count(*) FROM resource_action_traces WHERE namespace = $1", namespace) == 0
    finally:
        cluster.kubectl("delete", "node", node, "--wait=false")


def test_the_quarantine_label_on_a_pod_is_recorded_on_its_workload(cluster: ControlPlane, gate, namespace: str):
    agent = agent_with_pod_rights(cluster, namespace)
    cluster.apply(deployment("cart", namespace))
    pod = a_pod_of(cluster, namespace, "cart", other_than=set())
    label = "ai.prometheus-alerts-slm.io/quarantine"
    assert cluster.kubectl("label", "pod", pod, "team=a", namespace=namespace, as_user=agent).returncode == 0
    res = cluster.kubectl("label", "pod", pod, f"{label}=true", namespace=namespace, as_user=agent)
    assert res.returncode == 0, res.stderr
    rows = gate.sql("SELECT action_type, kind, name, object_kind FROM resource_action_traces WHERE namespace = $1",
                    namespace)
    assert [(r["action_type"], r["kind"], r["name"], r["object_kind"]) for r in rows] == [
        ("quarantine_pod", "Deployment", "cart", "Pod")]


ALERT_ANNOTATION = "ai.prometheus-alerts-slm.io/alert-name"


def expandable_claim(cluster: ControlPlane, namespace: str, *, name: str, size: str = "1Gi") -> str:
    """A PersistentVolumeClaim bound, by the controller-manager's binder, to a hostPath volume of a
    StorageClass that allows expansion (else the API server's PersistentVolumeClaimResize admission
    refuses any resize). Returns the StorageClass's name; the class and the volume are cluster-scoped."""
    storage_class = f"expandable-{namespace}"[:63]
    cluster.apply([
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": storage_class},
         "provisioner": "kubernetes.io/no-provisioner", "allowVolumeExpansion": True,
         "volumeBindingMode": "Immediate"},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{storage_class}-{name}"[:63]},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                  "storageClassName": storage_class, "persistentVolumeReclaimPolicy": "Retain",
                  "hostPath": {"path": f"/tmp/{storage_class}-{name}"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                  "resources": {"requests": {"storage": size}}}},
    ])
    wait_for(lambda: cluster.kubectl_json("get", "pvc", name, namespace=namespace).get("status", {})
             .get("phase") == "Bound", timeout=60, interval=0.2, description=f"claim {name} bound by the binder")
    return storage_class


def agent_with_claim_rights(cluster: ControlPlane, namespace: str) -> str:
    agent = service_account(namespace, "agent")
    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "expander", "namespace": namespace},
         "rules": [{"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "expander", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "expander"},
         "subjects": [{"kind": "ServiceAccount", "namespace": namespace, "name": "agent"}]},
    ])
    return agent


def expand(cluster: ControlPlane, namespace: str, name: str, size: str, *, as_user: str, alert: str | None):
    metadata = {"annotations": {ALERT_ANNOTATION: alert}} if alert else {}
    patch = {"metadata": metadata, "spec": {"resources": {"requests": {"storage": size}}}}
    return cluster.kubectl("patch", "pvc", name, "--type", "merge", "-p", json.dumps(patch),
                           namespace=namespace, as_user=as_user)


def requested(cluster: ControlPlane, namespace: str, name: str) -> str:
    return cluster.kubectl_json("get", "pvc", name, namespace=namespace)["spec"]["resources"]["requests"]["storage"]


def test_expanding_one_claim_again_and_again_for_one_alert_is_escalated(cluster: ControlPlane, gate, namespace: str):
    """expand_pvc: a claim's storage request increasing (DESIGN §4: repeated expansion is an
    ineffective loop). Each expansion answers the same alert, which keeps firing: the fourth is
    the fourth try without effect and is refused 403 for a person to look at."""
    agent = agent_with_claim_rights(cluster, namespace)
    storage_class = expandable_claim(cluster, namespace, name="data")
    try:
        alert = "KubePersistentVolumeFillingUp"
        for size in ("2Gi", "3Gi"):
            res = expand(cluster, namespace, "data", size, as_user=agent, alert=alert)
            assert res.returncode == 0, res.stderr
        third = expand(cluster, namespace, "data", "4Gi", as_user=agent, alert=alert)
        assert third.returncode == 0, third.stderr
        assert "one more such change triggers ineffective-loop" in third.stderr, third.stderr
        refused = expand(cluster, namespace, "data", "5Gi", as_user=agent, alert=alert)
        assert refused.returncode != 0
        assert (f"safety-gate: ineffective-loop on PersistentVolumeClaim {namespace}/data: 3 earlier expand_pvc "
                "actions") in refused.stderr, refused.stderr
        assert f"alert {alert}" in refused.stderr
        assert f"safety-gate approve {namespace}/persistentvolumeclaim-data-ineffective-loop" in refused.stderr
        assert requested(cluster, namespace, "data") == "4Gi"  # the refused expansion never happened
        rows = gate.sql("SELECT action_type, kind, name, object_kind, alert_name FROM resource_action_traces "
                        "WHERE namespace = $1 ORDER BY id", namespace)
        assert [(r["action_type"], r["kind"], r["name"], r["object_kind"], r["alert_name"]) for r in rows] == [
            ("expand_pvc", "PersistentVolumeClaim", "data", "PersistentVolumeClaim", alert)] * 3
        # Four judged, one refused; the binder's own updates of the claim (its annotations, the
        # volume's name) change no storage request and were not judged at all.
        decisions = gate.sql("SELECT action_type, outcome FROM admission_decisions WHERE namespace = $1 "
                             "ORDER BY decided_at", namespace)
        assert [(d["action_type"], d["outcome"]) for d in decisions] == [
            ("expand_pvc", "allow")] * 3 + [("expand_pvc", "deny")], \
            decisions
    finally:
        cluster.kubectl("delete", "pvc", "data", "--wait=false", namespace=namespace)
        cluster.kubectl("delete", "pv", f"{storage_class}-data"[:63], "--wait=false")
        cluster.kubectl("delete", "storageclass", storage_class)


def test_expansions_that_answer_no_returning_alert_are_not_a_loop(cluster: ControlPlane, gate, namespace: str):
    """Without an alert that comes back (or a low score), nothing shows an expansion failed: a claim
    that keeps growing with its data is admitted every time, and recorded."""
    agent = agent_with_claim_rights(cluster, namespace)
    storage_class = expandable_claim(cluster, namespace, name="logs")
    try:
        for size in ("2Gi", "3Gi", "4Gi", "5Gi", "6Gi"):
            res = expand(cluster, namespace, "logs", size, as_user=agent, alert=None)
            assert res.returncode == 0, res.stderr
            assert "safety-gate" not in res.stderr, res.stderr
        assert requested(cluster, namespace, "logs") == "6Gi"
        assert gate.count("SELECT count(*) FROM resource_action_traces WHERE namespace = $1 "
                          "AND action_type = 'expand_pvc'", namespace) == 5
    finally:
        cluster.kubectl("delete", "pvc", "logs", "--wait=false", namespace=namespace)
        cluster.kubectl("delete", "pv", f"{storage_class}-logs"[:63], "--wait=false")
        cluster.kubectl("delete", "storageclass", storage_class)
