"""A default `helm install` in a real cluster: the chart's own stores, the migration Job, pods
without service links (the release is named `safety-gate`), and the NetworkPolicies.

The first test here pays for the session: images (built offline from source when no
registry is reachable, cached by version), the kind cluster and the install.
"""

from __future__ import annotations

import json

import pytest
from kind_helpers import FULLNAME, NAMESPACE, POSTGRES, REPO, KindCluster

# Building every image from a cold cache takes tens of minutes on two cores (see README.md).
pytestmark = pytest.mark.timeout(5400)

REDIS = f"{FULLNAME}-redis"


def gate_exec_python(cluster: KindCluster, code: str) -> str:
    res = cluster.kubectl("exec", f"deployment/{FULLNAME}", "-c", "safety-gate", "--", "python3", "-c", code,
                          namespace=NAMESPACE, check=True)
    return res.stdout.strip()


def test_default_install_migrates_its_own_postgresql_and_decides_from_it(kind_cluster: KindCluster):
    job = kind_cluster.kubectl_json("get", "job", f"{FULLNAME}-migrate", namespace=NAMESPACE)
    assert job["status"].get("succeeded") == 1, job["status"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"

    migrations = sorted(p.name for p in (REPO / "webhook" / "store" / "migrations").glob("*.sql"))
    assert kind_cluster.psql("SELECT string_agg(version, ' ' ORDER BY version) FROM schema_migrations").split() \
        == migrations
    assert kind_cluster.psql("SHOW server_encoding") == "UTF8"

    # A StatefulSet with a bound PVC, kept on uninstall, and a generated password.
    sts = kind_cluster.kubectl_json("get", "statefulset", POSTGRES, namespace=NAMESPACE)
    assert sts["status"].get("readyReplicas") == 1
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    pvc = kind_cluster.kubectl_json("get", "pvc", f"data-{POSTGRES}-0", namespace=NAMESPACE)
    assert pvc["status"]["phase"] == "Bound"
    secret = kind_cluster.secret_data(POSTGRES)
    password = secret["postgres-password"].decode()
    assert len(password) == 32 and password.isalnum()
    assert secret["postgres-dsn"].decode() == \
        f"postgresql://safety_gate:{password}@{POSTGRES}.{NAMESPACE}.svc:5432/safety_gate"
    assert kind_cluster.kubectl_json("get", "secret", POSTGRES, namespace=NAMESPACE)["metadata"]["annotations"][
        "helm.sh/resource-policy"] == "keep"

    # Three gate pods, both stores up: /readyz as the kubelet sees it, from inside a pod.
    assert len(kind_cluster.ready_gate_pods()) == 3
    ready = json.loads(gate_exec_python(kind_cluster, (
        "import ssl, urllib.request; ctx = ssl._create_unverified_context(); "
        "print(urllib.request.urlopen('https://127.0.0.1:8443/readyz', context=ctx).read().decode())")))
    assert ready["ready"] is True and ready["stores"] == {"postgres": "up", "redis": "up"}, ready
    pdb = kind_cluster.kubectl_json("get", "pdb", FULLNAME, namespace=NAMESPACE)
    assert pdb["spec"]["minAvailable"] == 1

    # The NOTES say this is for convenience, and what to use in production.
    assert "CloudNativePG" in kind_cluster.install_notes
    assert "postgresql.enabled=false" in kind_cluster.install_notes


def test_no_pod_of_the_release_gets_service_links(kind_cluster: KindCluster):
    """The Service `safety-gate` would inject SAFETY_GATE_PORT=tcp://... into every pod."""
    pods = kind_cluster.kubectl_json("get", "pods", namespace=NAMESPACE)["items"]
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"webhook", "postgresql", "redis", "migrate"} <= components, components
    for pod in pods:
        assert pod["spec"].get("enableServiceLinks") is False, pod["metadata"]["name"]
    names = json.loads(gate_exec_python(
        kind_cluster, "import json, os; print(json.dumps(sorted(k for k in os.environ if k.startswith('SAFETY_GATE_'))))"))
    assert "SAFETY_GATE_PORT" not in names and not any(n.endswith("_SERVICE_HOST") for n in names), names


def test_network_policies_are_rendered_for_the_gate_and_its_stores(kind_cluster: KindCluster):
    policies = {p["metadata"]["name"]: p for p in
                kind_cluster.kubectl_json("get", "networkpolicy", namespace=NAMESPACE)["items"]}
    assert set(policies) == {FULLNAME, POSTGRES, REDIS}
    assert policies[FULLNAME]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for store, port in ((POSTGRES, 5432), (REDIS, 6379)):
        ingress = policies[store]["spec"]["ingress"]
        assert ingress[0]["ports"] == [{"port": port, "protocol": "TCP"}]
        assert ingress[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "safety-gate"
    # The offline node image's CNI is static ptp (documented in e2e/kind/README.md: it does
    # not enforce NetworkPolicy); kind's default kindnet does.
    if kind_cluster.toolchain.node_image:
        cni = kind_cluster.kubectl_json("get", "configmap", "safety-gate-kind-cni", namespace="kube-system")
        assert "no NetworkPolicy enforcement" in cni["data"]["cni"]
