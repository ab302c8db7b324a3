"""``/validate`` only from the API server (issue 13, item 1): with ``--validate-client-ca`` the gate
requires the client certificate the API server presents through its admission kubeconfig
(``e2e/cluster.py`` writes one for a webhook at ``127.0.0.1:cluster.admission_port``).

An unauthenticated caller, or one with a certificate of another CA, is refused and nothing is
recorded; the API server's reviews are decided and recorded as ever.
"""

from __future__ import annotations

import base64
import json
import ssl

import httpx
import pytest
from cluster import ControlPlane, deployment, grant_remediation_rights, service_account, wait_for

from tests import reviews

pytestmark = pytest.mark.local_gate
CLUSTER_ID = "mtls-e2e"


@pytest.fixture
def strict_gate(cluster: ControlPlane, gate_stores, tmp_path, namespace: str):
    """A second gate on the port the API server's admission kubeconfig names, requiring its certificate,
    registered (failurePolicy Fail) for this test's namespace only."""
    from tests.gateproc import GateProcess

    dsn, redis_url = gate_stores
    process = GateProcess(data_dir=tmp_path / "strict-gate", postgres_dsn=dsn, redis_url=redis_url,
                          port=cluster.admission_port,
                          extra_args=["--validate-client-ca", str(cluster.admission_client_ca),
                                      "--cluster-id", CLUSTER_ID, "--log-level", "INFO"],
                          env={"SAFETY_GATE_NAMESPACE": "safety-gate-e2e"})
    process.start()
    name = f"strict-gate-{namespace}"
    try:
        cluster.apply({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "strict.safety-gate.example.com", "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun", "failurePolicy": "Fail", "timeoutSeconds": 5,
                "clientConfig": {"url": f"{process.url}/validate",
                                 "caBundle": base64.b64encode(process.ca_file.read_bytes()).decode()},
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                           "resources": ["deployments", "deployments/scale"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            }],
        })
        yield process
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        process.stop()


def recorded(gate, namespace: str) -> int:
    return gate.count("SELECT count(*) FROM admission_decisions WHERE cluster_id = $1 AND namespace = $2",
                      CLUSTER_ID, namespace)


def test_only_the_api_server_gets_through_to_validate(cluster: ControlPlane, gate, strict_gate, namespace: str):
    body = reviews.scale(namespace=namespace, before=1, after=4)
    trust = ssl.create_default_context(cafile=str(strict_gate.ca_file))
    with httpx.Client(base_url=strict_gate.url, verify=trust, timeout=10) as anonymous:
        refused = anonymous.post("/validate", content=json.dumps(body),
                                 headers={"content-type": "application/json"})
        assert refused.status_code == 403 and "client certificate" in refused.json()["error"]
        assert anonymous.get("/healthz").status_code == 200  # probes need no certificate
    # A certificate of the cluster's CA (any user's) is not the API server's: the handshake fails.
    cert, key = cluster.client_credentials("mallory", ["system:masters"])
    other = ssl.create_default_context(cafile=str(strict_gate.ca_file))
    other.load_cert_chain(str(cert), str(key))
    with httpx.Client(base_url=strict_gate.url, verify=other, timeout=10) as impostor, \
            pytest.raises(httpx.TransportError):
        impostor.post("/validate", content=json.dumps(body), headers={"content-type": "application/json"})
    assert recorded(gate, namespace) == 0

    # The API server presents its admission client certificate: its reviews are decided and recorded.
    agent = service_account(namespace, "agent")
    grant_remediation_rights(cluster, namespace, subjects=[agent])
    cluster.apply(deployment("cart", namespace, replicas=1))
    replicas = iter(range(2, 50))

    def decided() -> bool:
        result = cluster.kubectl("scale", "deployment/cart", f"--replicas={next(replicas)}", namespace=namespace,
                                 as_user=agent)
        assert result.returncode == 0, result.stderr  # failurePolicy Fail: a refused handshake would show
        return recorded(gate, namespace) > 0
    wait_for(decided, timeout=30, interval=0.5, description="the strict gate to decide the API server's review")
