"""The REST API behind the API server's own authentication: a service-account token is checked
with a TokenReview, and what it may do with a SubjectAccessReview against Kubernetes RBAC."""

from __future__ import annotations

import httpx
import pytest
from cluster import ControlPlane

ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: sg-e2e-alert-reader}
rules:
- apiGroups: [ai.prometheus-alerts-slm.io]
  resources: [oscillationalerts]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: sg-e2e-alert-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sg-e2e-alert-reader}
subjects:
- {kind: ServiceAccount, name: reader, namespace: NAMESPACE}
"""


def token_for(cluster: ControlPlane, namespace: str, name: str) -> str:
    cluster.kubectl("create", "serviceaccount", name, namespace=namespace, check=True)
    return cluster.kubectl("create", "token", name, namespace=namespace, check=True).stdout.strip()


@pytest.mark.local_gate
def test_tokens_are_reviewed_by_the_api_server_and_rbac_decides(cluster: ControlPlane, gate, namespace: str):
    reader, stranger = token_for(cluster, namespace, "reader"), token_for(cluster, namespace, "stranger")
    cluster.kubectl("apply", "-f", "-", input=ROLE.replace("NAMESPACE", namespace), check=True)
    with gate.process.new_client(timeout=15) as client:
        def get(token: str | None) -> httpx.Response:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            return client.get("/api/v1/history", params={"namespace": namespace}, headers=headers)

        assert get(None).status_code == 401
        assert get("not-a-token").status_code == 401
        refused = get(stranger)
        assert refused.status_code == 403
        assert f"system:serviceaccount:{namespace}:stranger" in refused.json()["error"]
        allowed = get(reader)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["items"] == []
        # Reading is not writing: recording an assessment needs `create`, which the role lacks.
        write = client.post("/api/v1/actions/1/effectiveness", headers={"authorization": f"Bearer {reader}"},
                            json={"score": 0.9, "method": "manual"})
        assert write.status_code == 403


@pytest.mark.local_gate
def test_readiness_includes_the_cluster_policies(gate):
    with gate.process.new_client() as client:
        body = client.get("/readyz").json()
    assert body["ready"] is True and body["policies"] == "synced"
