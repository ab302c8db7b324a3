"""The gate's own Kubernetes objects: escalations approved on the OscillationAlert, live
OscillationPattern policies, alert expiry, the failurePolicy when the gate is down, and the
uninstall cleanup — all against the real API server."""

from __future__ import annotations

import json

import yaml
from cluster import (
    ControlPlane,
    deployment,
    grant_remediation_rights,
    oscillation_alert,
    remediation_pipelinerun,
    replicas_of,
    service_account,
    wait_for,
)


def agent_of(cluster: ControlPlane, namespace: str) -> str:
    agent = service_account(namespace, "agent")
    grant_remediation_rights(cluster, namespace, subjects=[agent])
    return agent


def scale(cluster: ControlPlane, namespace: str, replicas: int, *, as_user: str, dry_run: bool = False,
          name: str = "cart"):
    args = ["scale", f"deployment/{name}", f"--replicas={replicas}"] + (["--dry-run=server"] if dry_run else [])
    return cluster.kubectl(*args, namespace=namespace, as_user=as_user)


def wait_alert(cluster: ControlPlane, namespace: str, name: str, predicate, description: str,
               timeout: float = 30) -> dict:
    def ready():
        alert = oscillation_alert(cluster, namespace, name)
        return alert if alert is not None and predicate(alert) else None
    return wait_for(ready, timeout=timeout, interval=0.2, description=description)


def scale_policy(name: str, *, namespace: str, cooldown: str, enforcement: str = "enforce",
                 labels: dict[str, str] | None = None) -> dict:
    """A scale-oscillation OscillationPattern scoped to one namespace (and, optionally, labels)."""
    return {
        "apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "OscillationPattern",
        "metadata": {"name": name},
        "spec": {
            "patternDefinition": {"patternType": "scale-oscillation",
                                  "detectionCriteria": {"minOccurrences": 3, "timeWindow": "2h",
                                                        "thresholds": {"directionChanges": 2}}},
            "resourceScope": {"namespaces": [namespace], **({"labels": labels} if labels else {})},
            "preventionStrategy": {"strategy": "cooling-period", "parameters": {"cooldownPeriod": cooldown}},
            "enforcementAction": enforcement,
        },
    }

def test_repeated_pipelineruns_escalate_and_an_approval_admits_exactly_one(cluster: ControlPlane, gate,
                                                                           namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace))
    run = json.dumps(remediation_pipelinerun(namespace, target=f"{namespace}/Deployment/cart",
                                             alert="KubePodCrashLooping"))

    def create():
        return cluster.kubectl("create", "-f", "-", input=run, namespace=namespace, as_user=agent)

    for _ in range(3):  # the alert keeps coming back after each restart: each one was ineffective
        res = create()
        assert res.returncode == 0, res.stderr
    refused = create()
    assert refused.returncode != 0
    assert "safety-gate: ineffective-loop" in refused.stderr, refused.stderr
    alert_name = "deployment-cart-ineffective-loop"
    assert f"oscillationalert {namespace}/{alert_name}" in refused.stderr
    alert = wait_alert(cluster, namespace, alert_name, lambda a: a.get("status", {}).get("phase") == "PendingApproval",
                       "the escalation alert")
    assert alert["spec"]["strategy"] == "escalate-human"
    assert len(cluster.kubectl_json("get", "pr", namespace=namespace)["items"]) == 3

    # Approving a missing alert is a clear error, not a traceback.
    missing = gate.cli("approve", f"{namespace}/no-such-alert", "--reason", "x", "--kubeconfig",
                       str(cluster.kubeconfig))
    assert missing.returncode == 1
    assert f"no OscillationAlert 'no-such-alert' in namespace '{namespace}'" in missing.stderr + missing.stdout
    assert "Traceback" not in missing.stderr

    # The approval records the Kubernetes identity of whoever runs approve (a SelfSubjectReview).
    approver = cluster.kubectl_json("auth", "whoami")["status"]["userInfo"]["username"]
    approved = gate.cli("approve", f"{namespace}/{alert_name}", "--reason", "restart once more after the fix",
                        "--kubeconfig", str(cluster.kubeconfig), check=True)
    assert f"as {approver}" in approved.stdout
    approval = oscillation_alert(cluster, namespace, alert_name)["spec"]["approval"]
    assert approval["approvedBy"] == approver and approval["approvedAt"].endswith("Z")
    # The gate's watch copies it into PostgreSQL, where the engine reads approvals.
    wait_for(lambda: gate.count("SELECT count(*) FROM oscillation_detections WHERE alert_namespace = $1"
                                " AND alert_name = $2 AND approved_by = $3", namespace, alert_name, approver),
             timeout=30, interval=0.2, description="the approval synced into PostgreSQL")

    admitted = create()
    assert admitted.returncode == 0, admitted.stderr
    assert f"allowed once by the approval of {approver}" in admitted.stderr
    again = create()
    assert again.returncode != 0 and "safety-gate: ineffective-loop" in again.stderr
    assert len(cluster.kubectl_json("get", "pr", namespace=namespace)["items"]) == 4

    alert = wait_alert(cluster, namespace, alert_name,
                       lambda a: a["status"].get("approvalUsedBy") == agent and a["status"].get("deniedRequests") == 2,
                       "the used approval recorded on the alert")
    assert alert["status"]["approvalUsedAt"].endswith("Z")
    assert alert["status"]["phase"] == "PendingApproval"  # refused again: waiting for the next approval

    # A relist or a replayed watch event never re-arms the used approval: still refused.
    assert create().returncode != 0


def test_an_oscillationpattern_applied_with_kubectl_changes_the_next_decision(cluster: ControlPlane, gate,
                                                                             namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))
    assert scale(cluster, namespace, 3, as_user=agent).returncode == 0
    assert scale(cluster, namespace, 1, as_user=agent).returncode == 0
    refused = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
    assert refused.returncode != 0 and "scale-oscillation" in refused.stderr

    name = f"warn-{namespace}"[:63]
    policy = scale_policy(name, namespace=namespace, cooldown="30m", enforcement="warn")
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy), check=True)
    try:
        # Poll with server dry runs (they record nothing) until the gate has the new policy.
        def warned():
            res = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
            return res if res.returncode == 0 else None
        res = wait_for(warned, timeout=30, interval=0.2, description="the OscillationPattern to be in force")
        assert "Warning: safety-gate" in res.stderr, res.stderr

        real = scale(cluster, namespace, 3, as_user=agent)
        assert real.returncode == 0, real.stderr
        assert "Warning: safety-gate" in real.stderr and "scale-oscillation" in real.stderr
        assert replicas_of(cluster, "cart", namespace) == 3
        alert = wait_alert(cluster, namespace, "deployment-cart-scale-oscillation", lambda a: "status" in a,
                           "the warn-mode alert")
        assert alert["spec"]["enforcementAction"] == "warn"
        assert alert["status"]["deniedRequests"] == 0
    finally:
        cluster.kubectl("delete", "oscillationpattern", name, "--ignore-not-found", check=True)

    # Deleted: the built-in default (enforce) applies again.
    def enforced():
        res = scale(cluster, namespace, 1, as_user=agent, dry_run=True)
        return res if res.returncode != 0 else None
    res = wait_for(enforced, timeout=30, interval=0.2, description="the default policy back in force")
    assert "safety-gate: scale-oscillation" in res.stderr


def test_an_alert_expires_when_its_cooling_period_ends(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))
    name = f"short-{namespace}"[:63]
    policy = scale_policy(name, namespace=namespace, cooldown="3s")
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy), check=True)
    try:
        assert scale(cluster, namespace, 3, as_user=agent).returncode == 0
        assert scale(cluster, namespace, 1, as_user=agent).returncode == 0

        def refused_briefly():
            res = scale(cluster, namespace, 3, as_user=agent)
            if res.returncode == 0:  # the policy was not in force yet: undo and try again
                assert scale(cluster, namespace, 1, as_user=agent).returncode == 0
                return None
            return res
        res = wait_for(refused_briefly, timeout=30, interval=0.2, description="a cooling period of 3s")
        assert "cooling period until" in res.stderr
        alert = wait_alert(cluster, namespace, "deployment-cart-scale-oscillation",
                           lambda a: a.get("status", {}).get("phase") in ("Active", "Expired"), "the alert")
        assert alert["status"].get("cooldownUntil")
        # The gate's sweep (every second here) moves it to Expired once the period is over.
        expired = wait_alert(cluster, namespace, "deployment-cart-scale-oscillation",
                             lambda a: a["status"]["phase"] == "Expired", "the alert to expire", timeout=60)
        assert expired["status"]["message"].startswith("expired")
    finally:
        cluster.kubectl("delete", "oscillationpattern", name, "--ignore-not-found", check=True)


def test_with_the_gate_down_writes_succeed_and_the_api_server_reports_it(cluster: ControlPlane, gate,
                                                                          namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))
    def failed_calls() -> list[str]:
        # kube-apiserver: "Failed calling webhook, failing open validate.safety-gate...: failed calling webhook ..."
        return [line for line in cluster.apiserver_log().splitlines()
                if "failed calling webhook, failing open validate.safety-gate" in line.lower()]

    before = len(failed_calls())
    gate.stop()
    try:
        for replicas in (3, 1, 3, 1):  # an oscillation the gate would refuse: failurePolicy Ignore lets it through
            res = scale(cluster, namespace, replicas, as_user=agent)
            assert res.returncode == 0, res.stderr
        assert replicas_of(cluster, "cart", namespace) == 1

        def reported() -> str | None:
            lines = failed_calls()
            return lines[-1] if len(lines) > before else None
        line = wait_for(reported, timeout=30, interval=0.5, description="the API server to log the failed call")
        assert "/validate?timeout=3s" in line, line
    finally:
        gate.start()

    # Back: gating resumes (the history it missed is simply not there).
    gate.wait_gating()
    assert scale(cluster, namespace, 3, as_user=agent).returncode == 0
    assert scale(cluster, namespace, 1, as_user=agent).returncode == 0
    res = scale(cluster, namespace, 3, as_user=agent)
    assert res.returncode != 0 and "safety-gate: scale-oscillation" in res.stderr, res.stderr


def test_cleanup_deletes_the_webhook_configuration_and_is_idempotent(cluster: ControlPlane, gate):
    from cluster import register_webhook

    name = "safety-gate-cleanup-e2e"
    reg = register_webhook(cluster, "https://127.0.0.1:1/validate", gate.ca_bundle(),
                           "safety-gate-cleanup", release=name)
    assert reg.name == name
    cluster.kubectl("get", "validatingwebhookconfiguration", name, check=True)
    first = gate.cli("cleanup", "--webhook-config", name, "--kubeconfig", str(cluster.kubeconfig), check=True)
    assert "deleted" in first.stdout
    assert cluster.kubectl("get", "validatingwebhookconfiguration", name).returncode != 0
    second = gate.cli("cleanup", "--webhook-config", name, "--kubeconfig", str(cluster.kubeconfig), check=True)
    assert "already gone" in second.stdout


def test_a_label_scoped_policy_applies_to_the_scale_subresource(cluster: ControlPlane, gate, namespace: str):
    """``kubectl scale`` sends an autoscaling/v1 Scale without labels: the gate reads the Deployment's."""
    agent = agent_of(cluster, namespace)
    cluster.apply([deployment("cart", namespace, replicas=1, labels={"tier": "frontend"}),
                   deployment("db", namespace, replicas=1, labels={"tier": "data"})])
    name = f"labels-{namespace}"[:63]
    policy = scale_policy(name, namespace=namespace, cooldown="30m", enforcement="warn",
                          labels={"tier": "frontend"})
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(policy), check=True)
    try:
        for workload in ("cart", "db"):
            assert scale(cluster, namespace, 3, as_user=agent, name=workload).returncode == 0
            assert scale(cluster, namespace, 1, as_user=agent, name=workload).returncode == 0

        def warned():
            res = scale(cluster, namespace, 3, as_user=agent, name="cart", dry_run=True)
            return res if res.returncode == 0 else None
        res = wait_for(warned, timeout=30, interval=0.2, description="the label-scoped policy on cart")
        assert "Warning: safety-gate" in res.stderr
        # db's labels do not match: the default (enforce) still refuses it.
        refused = scale(cluster, namespace, 3, as_user=agent, name="db", dry_run=True)
        assert refused.returncode != 0 and "safety-gate: scale-oscillation" in refused.stderr
    finally:
        cluster.kubectl("delete", "oscillationpattern", name, "--ignore-not-found", check=True)
