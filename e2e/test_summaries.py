"""ActionHistorySummary and EffectivenessMetric on a real API server.

The first test goes through the whole path: kubectl changes gated by the gate process, scores
reported over its REST API, and ``kubectl get ahs`` / ``kubectl get effectivenessmetrics``
showing the result. The gate under test passes every second (``SAFETY_GATE_SUMMARY_INTERVAL=1``,
set by the ``gate`` fixture), so its documented delay is 1s + the 2s settle time.

The others run a :class:`Summariser` in the test process against the same API server and a
database of their own: a burst of thousands of actions over hundreds of targets, with the
write budget checked from the writer's own log of requests, the leader lock, and the removal
of summaries of targets idle past retention.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from collections.abc import Iterator

import kubernetes.config
import pytest
from cluster import (
    ControlPlane,
    deployment,
    grant_remediation_rights,
    remediation_pipelinerun,
    service_account,
    wait_for,
)

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.kube.client import KubeClient
from webhook.kube.summaries import Summariser
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool

DOCUMENTED_DELAY = 1 + 2   # SAFETY_GATE_SUMMARY_INTERVAL of the e2e gate + the settle time
SLACK = 12                 # a loaded 2-core machine: API server, etcd, PostgreSQL and pytest share it

SCORER_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: sg-e2e-scorer}
rules:
- apiGroups: [ai.prometheus-alerts-slm.io]
  resources: [oscillationalerts]
  verbs: [get, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: sg-e2e-scorer-NAMESPACE}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sg-e2e-scorer}
subjects:
- {kind: ServiceAccount, name: scorer, namespace: NAMESPACE}
"""


def summary(cluster: ControlPlane, namespace: str, name: str) -> dict | None:
    res = cluster.kubectl("get", "actionhistorysummary", name, "-o", "json", namespace=namespace)
    return json.loads(res.stdout) if res.returncode == 0 else None


def metric(cluster: ControlPlane, namespace: str, name: str) -> dict | None:
    res = cluster.kubectl("get", "effectivenessmetrics", name, "-o", "json", namespace=namespace)
    return json.loads(res.stdout) if res.returncode == 0 else None


def summary_where(cluster: ControlPlane, namespace: str, name: str, predicate, description: str,
                  timeout: float = DOCUMENTED_DELAY + SLACK) -> dict:
    """The summary's status, once ``predicate`` holds for it."""
    def ready():
        found = summary(cluster, namespace, name)
        return found["status"] if found is not None and predicate(found["status"]) else None
    return wait_for(ready, timeout=timeout, interval=0.2, description=description)


@pytest.mark.local_gate
def test_kubectl_shows_history_patterns_and_effectiveness(cluster: ControlPlane, gate, namespace: str):
    agent = service_account(namespace, "agent")
    grant_remediation_rights(cluster, namespace, subjects=[agent])
    cluster.apply(deployment("web", namespace, replicas=3))
    run = json.dumps(remediation_pipelinerun(namespace, target=f"{namespace}/Deployment/web", alert="HighLatency"))

    def scale(replicas: int):
        return cluster.kubectl("scale", "deployment/web", f"--replicas={replicas}", namespace=namespace,
                               as_user=agent)

    assert scale(5).returncode == 0                     # 3→5
    assert scale(3).returncode == 0                     # 5→3: first reversal
    assert scale(5).returncode != 0                     # second reversal: cooling period
    assert cluster.kubectl("create", "-f", "-", input=run, namespace=namespace, as_user=agent).returncode == 0

    # Scores for the three recorded actions, as an agent's feedback loop reports them.
    actions = gate.sql("SELECT id, action_type FROM resource_action_traces WHERE namespace = $1 ORDER BY id",
                       namespace)
    assert [a["action_type"] for a in actions] == ["scale_deployment", "scale_deployment", "restart_pod"]
    cluster.kubectl("create", "serviceaccount", "scorer", namespace=namespace, check=True)
    cluster.kubectl("apply", "-f", "-", input=SCORER_ROLE.replace("NAMESPACE", namespace), check=True)
    token = cluster.kubectl("create", "token", "scorer", namespace=namespace, check=True).stdout.strip()
    criteria = {"alertResolved": True, "targetMetricImproved": True, "noNewAlertsGenerated": True,
                "resourceStabilized": True, "sideEffectsMinimal": True}
    with gate.process.new_client(timeout=15) as client:
        for action, score in zip(actions, (0.2, 0.4, 0.9)):
            res = client.post(f"/api/v1/actions/{action['id']}/effectiveness",
                              headers={"authorization": f"Bearer {token}"},
                              json={"score": score, "method": "automated", "criteria": criteria})
            assert res.status_code == 200, res.text

    status = summary_where(cluster, namespace, "deployment-web",
                           lambda s: s.get("effectiveness", {}).get("sampleSize") == 3, "the summary with 3 scores")
    assert status["totalActions"] == 3
    assert status["actionsLast24h"] == {"restart_pod": 1, "scale_deployment": 2}
    assert status["patterns"] == "scale-oscillation"
    (pattern,) = status["detectedPatterns"]
    assert pattern["patternType"] == "scale-oscillation" and pattern["occurrences"] == 1
    assert pattern["alert"] == f"{namespace}/deployment-web-scale-oscillation"
    assert status["effectiveness"]["overallScore"] == 0.5
    assert status["effectiveness"]["actionTypeScores"] == {"restart_pod": 0.9, "scale_deployment": 0.3}
    assert status["activeRestriction"]["strategy"] == "cooling-period"
    assert status["activeRestriction"]["pattern"] == "scale-oscillation"

    table = cluster.kubectl("get", "ahs", namespace=namespace, check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "TARGET", "ACTIONS", "LAST", "PATTERNS", "EFFECTIVENESS", "AGE"]
    row = table[1].split()
    assert row[:3] == ["deployment-web", "Deployment/web", "3"] and row[4:6] == ["scale-oscillation", "0.5"]

    namespaced = wait_for(lambda: (m := metric(cluster, namespace, "namespace")) and m["status"]["sampleSize"] == 3
                          and m, timeout=DOCUMENTED_DELAY + SLACK, interval=0.2, description="the namespace metric")
    assert namespaced["spec"]["scope"] == {"scopeType": "namespace", "scopeValue": namespace}
    by_type = namespaced["status"]["effectiveness"]["byActionType"]
    assert {kind: (v["sampleSize"], v["averageScore"]) for kind, v in by_type.items()} == {
        "restart_pod": (1, 0.9), "scale_deployment": (2, 0.3)}
    assert namespaced["status"]["effectiveness"]["byAlertType"] == {
        "HighLatency": {"sampleSize": 1, "averageScore": 0.9, "mostEffectiveAction": "restart_pod",
                        "leastEffectiveAction": "restart_pod"}}
    listing = cluster.kubectl("get", "effectivenessmetrics", "-A", check=True).stdout
    assert "cluster" in listing and namespace in listing
    whole = metric(cluster, "safety-gate-e2e", "cluster")
    assert whole is not None and whole["status"]["sampleSize"] >= 3

    # A later action shows within the documented delay.
    assert cluster.kubectl("create", "-f", "-", input=run, namespace=namespace, as_user=agent).returncode == 0
    admitted = time.monotonic()
    status = summary_where(cluster, namespace, "deployment-web", lambda s: s["totalActions"] == 4,
                           "the 4th action in the summary")
    shown_after = time.monotonic() - admitted
    assert status["actionsLast24h"] == {"restart_pod": 2, "scale_deployment": 2}
    print(f"summary updated {shown_after:.1f}s after the action (documented: {DOCUMENTED_DELAY}s + queued writes)")


# --- the summariser in this process ---------------------------------------------------------------


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def summary_dsn(gate_stores) -> Iterator[str]:
    """A fresh, migrated database on the e2e PostgreSQL: a summariser's cursor and history of its own."""
    import asyncpg

    root = gate_stores[0].rpartition("/")[0]
    name = f"sg_summaries_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(gate_stores[0])
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await migrate(f"{root}/{name}")

    run(create())
    yield f"{root}/{name}"


def kube_client(cluster: ControlPlane) -> KubeClient:
    return KubeClient(kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig)), timeout=15)


def event(target: TargetRef, at: datetime.datetime, n: int) -> ActionEvent:
    return ActionEvent(uid=f"{target.name}-{n}-{uuid.uuid4().hex[:8]}", at=at, target=target, action_type="scale",
                       actor="system:serviceaccount:ops:agent", actor_class=ActorClass.AUTOMATION,
                       replicas_before=n % 5 + 1, replicas_after=(n + 1) % 5 + 1)


def summaries_in(cluster: ControlPlane, namespace: str) -> dict[str, dict]:
    listing = cluster.kubectl_json("get", "actionhistorysummaries", namespace=namespace)
    return {item["metadata"]["name"]: item for item in listing["items"]}


def test_a_burst_stays_within_the_write_budget_and_converges(cluster: ControlPlane, summary_dsn: str,
                                                             namespace: str):
    rate, burst, targets, actions = 25.0, 5, 300, 3000
    names = [f"svc-{i:03d}" for i in range(targets)]

    async def scenario() -> tuple[list[float], dict[str, int], int]:
        pool = await create_pool(summary_dsn, max_size=8)
        store = PostgresStore(pool, cluster_id="burst")
        client = kube_client(cluster)
        summariser = Summariser(client, pool=pool, cluster_id="burst", gate_namespace="safety-gate-e2e",
                                interval=0.5, writes_per_second=rate, burst=burst, settle=0.5)
        try:
            summariser.start()
            now = datetime.datetime.now(datetime.timezone.utc)
            # The storm: 3000 actions, round-robin over 300 targets, while the summariser runs.
            for n in range(actions):
                target = TargetRef(namespace=namespace, kind="Deployment", name=names[n % targets],
                                   api_version="apps/v1")
                await store.record_action(event(target, now - datetime.timedelta(seconds=actions - n), n))
            expected = {row["name"]: row["total_actions"] for row in await pool.fetch(
                "SELECT r.name, h.total_actions FROM action_histories h JOIN resource_references r"
                " ON r.id = h.resource_id")}

            def converged() -> bool:
                found = summaries_in(cluster, namespace)
                return len(found) == targets and all(
                    found[f"deployment-{name}"]["status"]["totalActions"] == total for name, total in expected.items())

            deadline = time.monotonic() + targets / rate * 3 + 60
            while not await asyncio.to_thread(converged):
                assert time.monotonic() < deadline, "the summaries did not converge"
                await asyncio.sleep(1)
            return list(summariser.writer.sent), expected, len(summaries_in(cluster, namespace))
        finally:
            await summariser.stop()
            client.close()
            await pool.close()

    sent, expected, listed = run(scenario())
    assert set(expected.values()) == {actions // targets}
    assert listed == targets
    # Coalesced: far fewer writes than actions, at least one per target.
    assert targets <= len(sent) < actions
    # The budget, checked on every window between two requests: at most burst + rate · length.
    for i, start in enumerate(sent):
        for j in range(i, len(sent)):
            assert j - i + 1 <= burst + rate * (sent[j] - start) + 1, (i, j)
    span = sent[-1] - sent[0]
    print(f"{len(sent)} writes for {actions} actions on {targets} targets in {span:.1f}s "
          f"({len(sent) / max(span, 1e-9):.1f}/s; budget {rate}/s, burst {burst})")


def test_one_leader_and_idle_targets_lose_their_summary(cluster: ControlPlane, summary_dsn: str, namespace: str):
    async def scenario() -> None:
        pool = await create_pool(summary_dsn, max_size=8)
        store = PostgresStore(pool, cluster_id="idle")
        clients = [kube_client(cluster), kube_client(cluster)]
        first, second = (Summariser(client, pool=pool, cluster_id="idle", gate_namespace="safety-gate-e2e",
                                    interval=0.5, writes_per_second=50, burst=20, settle=0,
                                    retention=datetime.timedelta(days=90)) for client in clients)
        try:
            now = datetime.datetime.now(datetime.timezone.utc)
            fresh = TargetRef(namespace=namespace, kind="Deployment", name="fresh", api_version="apps/v1")
            stale = TargetRef(namespace=namespace, kind="Deployment", name="stale", api_version="apps/v1")
            await store.record_action(event(fresh, now - datetime.timedelta(minutes=5), 1))
            await store.record_action(event(stale, now - datetime.timedelta(days=100), 1))
            # A summary of the stale target, left from when it was active.
            leftover = {"apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "ActionHistorySummary",
                        "metadata": {"name": "deployment-stale", "namespace": namespace,
                                     "labels": {"app.kubernetes.io/managed-by": "safety-gate",
                                                "ai.prometheus-alerts-slm.io/cluster-id": "idle"}},
                        "spec": {"targetRef": {"kind": "Deployment", "namespace": namespace, "name": "stale"}},
                        "status": {"totalActions": 1}}
            await asyncio.to_thread(cluster.apply, leftover)

            reports = [await first.run_pass(), await second.run_pass()]
            assert [r.leader for r in reports] == [True, False]
            assert reports[0].resynced and reports[0].deleted == 1
            while not (await first.run_pass()).caught_up:
                pass
            assert set(await asyncio.to_thread(summaries_in, cluster, namespace)) == {"deployment-fresh"}
            # The leader goes away: the other replica takes over at its next pass.
            await first.stop()
            assert (await second.run_pass()).leader
        finally:
            for summariser in (first, second):
                await summariser.stop()
            for client in clients:
                client.close()
            await pool.close()

    run(scenario())


def test_the_summary_crds_reject_a_wrong_shape(cluster: ControlPlane, namespace: str):
    bad = {"apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "ActionHistorySummary",
           "metadata": {"name": "bad", "namespace": namespace},
           "spec": {"targetRef": {"kind": "Deployment", "namespace": namespace, "name": "x"}},
           "status": {"totalActions": -1, "effectiveness": {"overallScore": 1.5}}}
    res = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), namespace=namespace)
    assert res.returncode != 0
    assert "totalActions" in res.stderr and "overallScore" in res.stderr
