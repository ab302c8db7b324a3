"""The release's lifecycle: `helm upgrade` with changed values (migrations again, the stores'
credentials kept, gating on), then `helm uninstall` (the pre-delete Job removes the webhook; the
database is kept). Runs last: the release is gone afterwards."""

from __future__ import annotations

import pytest
from cluster import wait_for
from kind_helpers import (
    DENIED,
    FULLNAME,
    NAMESPACE,
    POSTGRES,
    RELEASE,
    KindCluster,
    agent_of,
    scale,
    workload,
)

pytestmark = pytest.mark.timeout(1800)


def env_of(deployment: dict) -> dict[str, str]:
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "safety-gate")
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_helm_upgrade_with_changed_values(kind_cluster: KindCluster, namespace: str):
    password = kind_cluster.secret_data(POSTGRES)["postgres-password"]
    migrate_uid = kind_cluster.kubectl_json("get", "job", f"{FULLNAME}-migrate", namespace=NAMESPACE)["metadata"]["uid"]

    kind_cluster.helm("upgrade", RELEASE, "charts/safety-gate", "-n", NAMESPACE, "--reuse-values", "--wait",
                      "--timeout", "10m", "--set", "logLevel=debug", "--set", "maxInFlight=32")

    # helm --wait accepts replicas - maxUnavailable ready pods; the rollout goes on to all three.
    kind_cluster.kubectl("rollout", "status", f"deployment/{FULLNAME}", "--timeout=600s", namespace=NAMESPACE,
                         check=True, timeout=660)
    deployment = kind_cluster.kubectl_json("get", "deployment", FULLNAME, namespace=NAMESPACE)
    env = env_of(deployment)
    assert env["SAFETY_GATE_LOG_LEVEL"] == "DEBUG" and env["SAFETY_GATE_MAX_IN_FLIGHT"] == "32"
    status = deployment["status"]
    assert status.get("updatedReplicas") == 3 and status.get("readyReplicas") == 3, status
    # The pre-upgrade hook ran the migrations again (a new Job), against the same database.
    job = kind_cluster.kubectl_json("get", "job", f"{FULLNAME}-migrate", namespace=NAMESPACE)
    assert job["metadata"]["uid"] != migrate_uid and job["status"].get("succeeded") == 1
    assert kind_cluster.secret_data(POSTGRES)["postgres-password"] == password
    assert kind_cluster.helm("history", RELEASE, "-n", NAMESPACE).stdout.count("deployed") == 1

    # The upgraded pods gate as before.
    agent = agent_of(kind_cluster, namespace)
    kind_cluster.apply(workload("cart", namespace, replicas=1, schedulable=False))
    assert scale(kind_cluster, namespace, "cart", 3, as_user=agent).returncode == 0
    assert scale(kind_cluster, namespace, "cart", 1, as_user=agent).returncode == 0
    refused = scale(kind_cluster, namespace, "cart", 3, as_user=agent)
    assert refused.returncode != 0 and DENIED in refused.stderr and "scale-oscillation" in refused.stderr


def test_helm_uninstall_runs_the_pre_delete_job_and_leaves_no_webhook(kind_cluster: KindCluster):
    assert kind_cluster.kubectl("get", "validatingwebhookconfiguration", FULLNAME).returncode == 0
    kind_cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "5m")

    assert kind_cluster.kubectl("get", "validatingwebhookconfiguration", FULLNAME).returncode != 0
    # The hook Job (deleted by Helm once it succeeded) left its events: it ran and completed.
    events = kind_cluster.kubectl_json("get", "events", "--field-selector",
                                       f"involvedObject.kind=Job,involvedObject.name={FULLNAME}-cleanup",
                                       namespace=NAMESPACE)["items"]
    assert "Completed" in {e["reason"] for e in events}, [e["reason"] for e in events]
    assert "BackoffLimitExceeded" not in {e["reason"] for e in events}
    wait_for(lambda: kind_cluster.kubectl("get", "deployment", FULLNAME, namespace=NAMESPACE).returncode != 0,
             timeout=120, interval=1, description="the gate's Deployment gone")
    # The database outlives the release (resource-policy keep, StatefulSet PVC retention).
    assert kind_cluster.kubectl("get", "secret", POSTGRES, namespace=NAMESPACE).returncode == 0
    assert kind_cluster.kubectl("get", "pvc", f"data-{POSTGRES}-0", namespace=NAMESPACE).returncode == 0
    # Nothing gates any more: the agent's loop goes through.
    namespace = kind_cluster.create_namespace("after-uninstall")
    agent = agent_of(kind_cluster, namespace)
    kind_cluster.apply(workload("cart", namespace, replicas=1, schedulable=False))
    for replicas in (3, 1, 3, 1):
        res = scale(kind_cluster, namespace, "cart", replicas, as_user=agent)
        assert res.returncode == 0 and "safety-gate" not in res.stderr, res.stderr
