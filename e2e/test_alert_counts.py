"""``safety-gate alerts`` from the cluster and from PostgreSQL agree (issue 13, item 7): the same
targets, UNTIL in the same precision, and the same DENIED and WARNED counts, with an agent's
refusals and a person's warned change during the cooling period."""

from __future__ import annotations

import json

from cluster import ControlPlane, deployment, grant_remediation_rights, service_account, wait_for


def test_alerts_from_the_cluster_and_from_postgresql_agree(cluster: ControlPlane, gate, namespace: str):
    agent = service_account(namespace, "agent")
    person = "alice@example.com"
    grant_remediation_rights(cluster, namespace, subjects=[agent, person])
    cluster.apply(deployment("cart", namespace, replicas=3))

    def scale(replicas: int, user: str):
        return cluster.kubectl("scale", "deployment/cart", f"--replicas={replicas}", namespace=namespace,
                               as_user=user)

    assert scale(5, agent).returncode == 0
    assert scale(3, agent).returncode == 0
    assert scale(5, agent).returncode != 0          # denied: forms the cooling period
    assert scale(2, agent).returncode != 0          # denied by the cooling period
    warned = scale(4, person)                       # a person: admitted, warned
    assert warned.returncode == 0 and "Warning" in warned.stderr, warned.stderr

    def rows(*source: str) -> list[dict]:
        shown = gate.cli("alerts", "-n", namespace, "--json", *source, check=True)
        return json.loads(shown.stdout)

    from_postgres = rows("--postgres-dsn", gate.dsn, "--cluster-id", "e2e")
    assert [(r["denied"], r["warned"]) for r in from_postgres] == [(2, 1)]

    def cluster_caught_up():
        found = rows("--kubeconfig", str(cluster.kubeconfig))
        return found if [(r["denied"], r["warned"]) for r in found] == [(2, 1)] else None

    from_cluster = wait_for(cluster_caught_up, timeout=30, interval=0.5, description="the alert's counts")
    assert from_cluster == from_postgres
    assert from_cluster[0]["target"] == "Deployment/cart" and from_cluster[0]["until"].endswith("Z")
