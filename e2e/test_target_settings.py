"""Per-workload settings against the real API server: the workload's owners set the seed's
``retentionPolicy`` and ``analysisConfig`` on its ActionHistorySummary; the CRD refuses what the
seed's schema refuses, detection honours the analysis settings for that workload, retention's
columns take the retention settings, and the gate's own writes of the summary keep them."""

from __future__ import annotations

import json

from cluster import ControlPlane, deployment, replicas_of, wait_for
from test_gate_cluster_objects import agent_of, scale


def patch_summary(cluster: ControlPlane, namespace: str, spec: dict, *, check: bool = True):
    return cluster.kubectl("patch", "actionhistorysummary", "deployment-cart", "--type", "merge",
                           "-p", json.dumps({"spec": spec}), namespace=namespace, check=check)


def retention_columns(gate, namespace: str) -> dict | None:
    rows = gate.sql("SELECT h.max_actions, h.max_age_days, h.compaction_strategy FROM action_histories h"
                    " JOIN resource_references r ON r.id = h.resource_id"
                    " WHERE r.namespace = $1 AND r.kind = 'Deployment' AND r.name = 'cart'", namespace)
    return rows[0] if rows else None


def test_owners_tune_one_workload_on_its_summary(cluster: ControlPlane, gate, namespace: str):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=1))
    assert scale(cluster, namespace, 3, as_user=agent).returncode == 0
    wait_for(lambda: cluster.kubectl("get", "actionhistorysummary", "deployment-cart", namespace=namespace)
             .returncode == 0 or None, timeout=60, interval=0.5, description="the summary written")

    refused = patch_summary(cluster, namespace, {"retentionPolicy": {"maxActions": 5}}, check=False)
    assert refused.returncode != 0 and "maxActions" in refused.stderr
    refused = patch_summary(cluster, namespace, {"analysisConfig": {"oscillationWindow": "2 hours"}}, check=False)
    assert refused.returncode != 0 and "oscillationWindow" in refused.stderr

    patch_summary(cluster, namespace, {"analysisConfig": {"patternMinOccurrences": 5},
                                       "retentionPolicy": {"maxActions": 50, "maxAge": "36h",
                                                           "compactionStrategy": "oldest-first"}})
    assert scale(cluster, namespace, 1, as_user=agent).returncode == 0

    # The third change would be a scale oscillation (3 changes, 2 reversals) under the default
    # policy; this workload asks for 5 changes. Server dry runs record nothing while polling.
    def allowed():
        res = scale(cluster, namespace, 3, as_user=agent, dry_run=True)
        return res if res.returncode == 0 else None
    wait_for(allowed, timeout=30, interval=0.3, description="the workload's analysisConfig in force")
    assert scale(cluster, namespace, 3, as_user=agent).returncode == 0
    assert replicas_of(cluster, "cart", namespace) == 3

    wait_for(lambda: retention_columns(gate, namespace) == {"max_actions": 50, "max_age_days": 2,
                                                            "compaction_strategy": "oldest-first"} or None,
             timeout=30, interval=0.3, description="the retention settings in action_histories")

    # The summariser rewrites the summary after every action: the owners' fields stay.
    def rewritten():
        summary = cluster.kubectl_json("get", "actionhistorysummary", "deployment-cart", namespace=namespace)
        return summary if summary.get("status", {}).get("totalActions") == 3 else None
    summary = wait_for(rewritten, timeout=60, interval=0.5, description="the summary updated")
    assert summary["spec"]["analysisConfig"] == {"patternMinOccurrences": 5}
    assert summary["spec"]["retentionPolicy"]["maxActions"] == 50

    # Taken away: the defaults are back, for detection and for retention.
    patch_summary(cluster, namespace, {"analysisConfig": None, "retentionPolicy": None})

    def refused_again():
        res = scale(cluster, namespace, 1, as_user=agent, dry_run=True)
        return res if res.returncode != 0 else None
    res = wait_for(refused_again, timeout=30, interval=0.3, description="the default policy back")
    assert "scale-oscillation" in res.stderr
    wait_for(lambda: retention_columns(gate, namespace) == {"max_actions": 1000, "max_age_days": 90,
                                                            "compaction_strategy": "pattern-aware"} or None,
             timeout=30, interval=0.3, description="the default retention back")
