"""OscillationPattern status against the real API server: the gate keeps each policy's
``status.statistics`` and ``status.detectionHistory`` current, beside the policy watcher's
``Accepted`` condition, and exports the same numbers as metrics."""

from __future__ import annotations

import yaml
from cluster import ControlPlane, deployment, wait_for
from test_gate_cluster_objects import agent_of, scale, scale_policy

# On kind the chart's gate passes every 60s (6 summary passes of 10s); the local one every 6s.
STATUS_TIMEOUT = 150


def pattern_object(cluster: ControlPlane, name: str) -> dict:
    return cluster.kubectl_json("get", "oscillationpattern", name)


def test_a_refusal_shows_in_the_policy_status_and_metrics(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))
    name = f"stats-{namespace}"[:63]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(scale_policy(name, namespace=namespace, cooldown="30m")),
                    check=True)
    try:
        def accepted():
            conditions = (pattern_object(cluster, name).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Accepted" and c["status"] == "True" for c in conditions) or None
        wait_for(accepted, timeout=30, interval=0.2, description="the policy accepted")
        fresh = pattern_object(cluster, name).get("status") or {}
        assert "statistics" not in fresh or fresh["statistics"]["totalDetections"] == 0

        assert scale(cluster, namespace, 3, as_user=agent).returncode == 0
        assert scale(cluster, namespace, 1, as_user=agent).returncode == 0
        refused = scale(cluster, namespace, 3, as_user=agent)
        assert refused.returncode != 0 and "scale-oscillation" in refused.stderr
        again = scale(cluster, namespace, 3, as_user=agent)   # refused by the cooling period: no new detection
        assert again.returncode != 0

        def counted():
            status = pattern_object(cluster, name).get("status") or {}
            return status if (status.get("statistics") or {}).get("totalDetections") == 1 else None
        status = wait_for(counted, timeout=STATUS_TIMEOUT, interval=0.5,
                          description="the detection in the policy status")
        statistics = status["statistics"]
        assert statistics["falsePositiveRate"] == 0.0
        assert "preventionSuccessRate" not in statistics          # its 2h window has not ended: not judged
        assert statistics["lastDetection"].endswith("Z")
        (entry,) = status["detectionHistory"]
        assert entry["resourceRef"] == {"kind": "Deployment", "name": "cart", "namespace": namespace}
        assert entry["outcome"] == "prevented" and entry["preventionApplied"] is True
        assert entry["actionCount"] >= 2 and 0.0 <= entry["confidence"] <= 1.0
        assert any(c["type"] == "Accepted" for c in status["conditions"])   # the watcher's fields are kept

        if gate.process is not None:   # the local gate: its /metrics (on kind, behind the Service)
            with gate.process.new_client() as client:
                text = client.get("/metrics").text
            assert f'safety_gate_pattern_detections{{pattern_type="scale-oscillation",policy="{name}"}} 1.0' in text
            assert (f'safety_gate_pattern_false_positive_ratio{{pattern_type="scale-oscillation",policy="{name}"}}'
                    ' 0.0') in text
    finally:
        cluster.kubectl("delete", "oscillationpattern", name, "--ignore-not-found", check=True)
