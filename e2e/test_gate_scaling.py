"""The gate in the real admission path: replica changes by an agent, the HPA, and dry runs.

Every change here is a real ``kubectl`` call against a real kube-apiserver, which calls the
gate over HTTPS (``POST /validate?timeout=3s``) and returns its verdict to kubectl.
The agent is an impersonated service account of the test's namespace with RBAC to scale.
"""

from __future__ import annotations

import json

import yaml
from cluster import (
    HPA_USER,
    ControlPlane,
    deployment,
    grant_remediation_rights,
    horizontal_pod_autoscaler,
    oscillation_alert,
    replicas_of,
    service_account,
    wait_for,
)

DENIED = 'admission webhook "validate.safety-gate.ai.prometheus-alerts-slm.io" denied the request'


def agent_of(cluster: ControlPlane, namespace: str) -> str:
    agent = service_account(namespace, "agent")
    grant_remediation_rights(cluster, namespace, subjects=[agent])
    return agent


def scale(cluster: ControlPlane, namespace: str, name: str, replicas: int, *, as_user: str, dry_run: bool = False):
    args = ["scale", f"deployment/{name}", f"--replicas={replicas}"]
    if dry_run:
        args.append("--dry-run=server")
    return cluster.kubectl(*args, namespace=namespace, as_user=as_user)


def alert_with(cluster: ControlPlane, namespace: str, name: str, predicate, description: str) -> dict:
    """Poll the OscillationAlert (written off the decision path) until ``predicate`` holds."""
    def ready():
        alert = oscillation_alert(cluster, namespace, name)
        return alert if alert is not None and predicate(alert) else None
    return wait_for(ready, timeout=30, interval=0.2, description=description)


def test_scale_back_and_forth_is_refused_and_alerted(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=3))

    assert scale(cluster, namespace, "cart", 5, as_user=agent).returncode == 0      # 3→5
    assert scale(cluster, namespace, "cart", 3, as_user=agent).returncode == 0      # 5→3: first reversal
    refused = scale(cluster, namespace, "cart", 5, as_user=agent)                   # 3→5: second reversal
    assert refused.returncode != 0
    assert DENIED in refused.stderr
    assert "safety-gate: scale-oscillation on Deployment" in refused.stderr
    assert "cooling period until" in refused.stderr
    assert f"oscillationalert {namespace}/deployment-cart-scale-oscillation" in refused.stderr
    assert replicas_of(cluster, "cart", namespace) == 3

    alert = alert_with(cluster, namespace, "deployment-cart-scale-oscillation",
                       lambda a: a.get("status", {}).get("deniedRequests") == 1, "the OscillationAlert")
    spec, status = alert["spec"], alert["status"]
    assert spec["patternType"] == "scale-oscillation"
    assert spec["strategy"] == "cooling-period"
    assert spec["enforcementAction"] == "enforce"
    assert spec["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace,
                                 "name": "cart"}
    assert spec["target"] == "Deployment/cart"
    assert spec["actor"] == agent
    assert spec["clusterId"] == "e2e"
    assert status["phase"] == "Active"
    assert status["occurrences"] == 1
    assert status["cooldownUntil"].endswith("Z")
    summaries = [item["summary"] for item in status["evidence"]]
    assert summaries == ["replicas 3→5", "replicas 5→3", "replicas 3→5"]
    assert {item["actor"] for item in status["evidence"]} == {agent}

    # The cooling period refuses the next replica change too, and the alert counts it.
    again = scale(cluster, namespace, "cart", 4, as_user=agent)
    assert again.returncode != 0 and "cooling period" in again.stderr
    alert_with(cluster, namespace, "deployment-cart-scale-oscillation",
               lambda a: a["status"].get("deniedRequests") == 2 and a["status"]["occurrences"] == 1,
               "the refusal counted on the alert")
    # kubectl get oa shows the columns people read.
    table = cluster.kubectl("get", "oa", namespace=namespace, check=True).stdout
    assert "deployment-cart-scale-oscillation" in table and "Deployment/cart" in table and "Active" in table


def test_patch_and_server_side_apply_are_gated_like_scale(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply([deployment("by-patch", namespace, replicas=2), deployment("by-apply", namespace, replicas=2)])

    def patch(replicas: int):
        return cluster.kubectl("patch", "deployment/by-patch", "--type=merge",
                               "-p", json.dumps({"spec": {"replicas": replicas}}), namespace=namespace, as_user=agent)

    assert patch(4).returncode == 0
    assert patch(2).returncode == 0
    refused = patch(4)
    assert refused.returncode != 0 and "safety-gate: scale-oscillation" in refused.stderr, refused.stderr
    assert replicas_of(cluster, "by-patch", namespace) == 2

    def apply(replicas: int):
        manifest = {"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "by-apply", "namespace": namespace}, "spec": {"replicas": replicas}}
        return cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=agent", "-f", "-",
                               input=yaml.safe_dump(manifest), namespace=namespace, as_user=agent)

    assert apply(6).returncode == 0
    assert apply(2).returncode == 0
    refused = apply(6)
    assert refused.returncode != 0 and "safety-gate: scale-oscillation" in refused.stderr, refused.stderr
    assert replicas_of(cluster, "by-apply", namespace) == 2

    for name in ("deployment-by-patch-scale-oscillation", "deployment-by-apply-scale-oscillation"):
        alert_with(cluster, namespace, name, lambda a: a.get("status", {}).get("phase") == "Active", name)


def test_hpa_is_never_refused_and_an_agent_fighting_it_is_blocked(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    grant_remediation_rights(cluster, namespace, subjects=[agent, HPA_USER])
    cluster.apply([deployment("web", namespace, replicas=2), deployment("api", namespace, replicas=2),
                   horizontal_pod_autoscaler("web", namespace, deployment_name="web", min_replicas=2)])

    # The HPA's own back and forth is observed, never refused. (On another Deployment: every
    # actor's changes are history, so this flapping would make the agent's first change below
    # a reversal already.)
    for replicas in (4, 2, 4, 2, 4, 2):
        res = scale(cluster, namespace, "api", replicas, as_user=HPA_USER)
        assert res.returncode == 0, res.stderr
    assert replicas_of(cluster, "api", namespace) == 2
    assert [d["outcome"] for d in gate.decisions(namespace)] == ["allow"] * 6

    assert scale(cluster, namespace, "web", 5, as_user=agent).returncode == 0     # the agent: 2→5
    assert scale(cluster, namespace, "web", 2, as_user=HPA_USER).returncode == 0  # the HPA moves it back
    fight = scale(cluster, namespace, "web", 5, as_user=agent)                    # the agent again
    assert fight.returncode != 0
    assert "controller-fight" in fight.stderr
    assert HPA_USER in fight.stderr
    assert f"HorizontalPodAutoscaler {namespace}/web" in fight.stderr, fight.stderr  # whose bounds to change
    assert replicas_of(cluster, "web", namespace) == 2

    # The HPA still scales freely while the agent is blocked.
    assert scale(cluster, namespace, "web", 3, as_user=HPA_USER).returncode == 0
    alert = alert_with(cluster, namespace, "deployment-web-controller-fight",
                       lambda a: a.get("status", {}).get("phase") == "Active", "the controller-fight alert")
    assert alert["spec"]["strategy"] == "block-action"


def test_server_dry_run_shows_the_decision_and_records_nothing(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))

    allowed = scale(cluster, namespace, "cart", 2, as_user=agent, dry_run=True)
    assert allowed.returncode == 0 and "(server dry run)" in allowed.stdout
    assert gate.actions(namespace) == 0 and gate.decisions(namespace) == []

    assert scale(cluster, namespace, "cart", 2, as_user=agent).returncode == 0
    assert scale(cluster, namespace, "cart", 1, as_user=agent).returncode == 0
    before = gate.actions(namespace), len(gate.decisions(namespace))
    assert before == (2, 2)

    would = scale(cluster, namespace, "cart", 2, as_user=agent, dry_run=True)
    assert would.returncode != 0 and "safety-gate: scale-oscillation" in would.stderr, would.stderr
    assert (gate.actions(namespace), len(gate.decisions(namespace))) == before
    assert gate.count("SELECT count(*) FROM restrictions WHERE scope LIKE $1", f"%{namespace}%") == 0
    assert oscillation_alert(cluster, namespace, "deployment-cart-scale-oscillation") is None

    # Nothing started: the real change is judged afresh (and refused, recorded, alerted).
    real = scale(cluster, namespace, "cart", 2, as_user=agent)
    assert real.returncode != 0 and "cooling period until" in real.stderr
    history = gate.cli("history", f"{namespace}/Deployment/cart", "--postgres-dsn", gate.dsn,
                       "--cluster-id", "e2e", check=True).stdout
    assert "2 action(s)" in history
    alert_with(cluster, namespace, "deployment-cart-scale-oscillation", lambda a: "status" in a, "the alert")


def test_opted_out_namespace_is_not_gated(cluster: ControlPlane, gate):
    namespace = cluster.create_namespace("sg-e2e-opted-out",
                                         labels={"ai.prometheus-alerts-slm.io/safety-gate": "disabled"})
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))
    for replicas in (3, 1, 3, 1, 3, 1):
        res = scale(cluster, namespace, "cart", replicas, as_user=agent)
        assert res.returncode == 0, res.stderr
    assert gate.decisions(namespace) == [] and gate.actions(namespace) == 0
    assert cluster.kubectl_json("get", "oa", namespace=namespace)["items"] == []
