"""Smoke tests of the e2e harness itself: the control plane is real, RBAC and
impersonation are enforced, the CRDs are served, and a webhook registered by
URL + caBundle with the chart's settings is called by the API server."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cluster import (
    CHART_DIR,
    OPT_OUT_LABEL,
    WEBHOOK_NAME,
    WEBHOOK_TEMPLATE,
    CertificateAuthority,
    ControlPlane,
    pinned_versions,
    register_webhook,
    service_account,
    wait_for,
    write_pem,
)

OA_CRD = "oscillationalerts.ai.prometheus-alerts-slm.io"
OP_CRD = "oscillationpatterns.ai.prometheus-alerts-slm.io"
PR_CRD = "pipelineruns.tekton.dev"


def deployment(name: str, namespace: str, replicas: int = 1) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                         "resources": {"requests": {"memory": "64Mi"}}}]},
            },
        },
    }


def statefulset(name: str, namespace: str, replicas: int = 1) -> dict:
    obj = deployment(name, namespace, replicas)
    obj["kind"] = "StatefulSet"
    obj["spec"]["serviceName"] = name
    return obj


def pipelinerun(name: str, namespace: str, api_version: str = "tekton.dev/v1") -> dict:
    return {
        "apiVersion": api_version,
        "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"ai.prometheus-alerts-slm.io/action-type": "scale_deployment"}},
        "spec": {
            "pipelineRef": {"name": "scale-deployment"},
            "params": [{"name": "TARGET_RESOURCE", "value": f"{namespace}/Deployment/cart"},
                       {"name": "ACTION_TYPE", "value": "scale_deployment"}],
        },
    }


def replicas(cluster: ControlPlane, kind: str, name: str, namespace: str) -> int:
    return cluster.kubectl_json("get", kind, name, namespace=namespace)["spec"]["replicas"]


# --------------------------------------------------------------------------
# the control plane


def test_api_server_ready_with_client_certificate_auth(cluster: ControlPlane):
    assert cluster.running
    assert cluster.api_get("/readyz") == (200, "ok")

    version = cluster.kubectl_json("version")["serverVersion"]
    assert version["gitVersion"] == pinned_versions()["kube-apiserver"]

    me = cluster.kubectl_json("auth", "whoami")["status"]["userInfo"]
    assert me["username"] == ControlPlane.ADMIN_USER
    assert "system:masters" in me["groups"]

    # Without a client certificate the request is anonymous and refused.
    ctx = ssl.create_default_context(cafile=str(cluster.ca_file))
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(cluster.server + "/api/v1/namespaces", context=ctx, timeout=5)
    assert err.value.code in (401, 403)


def test_crds_established_and_served(cluster: ControlPlane):
    assert PR_CRD in cluster.installed_crds
    assert OA_CRD in cluster.installed_crds, "charts/safety-gate/crds must define OscillationAlert"
    assert OP_CRD in cluster.installed_crds, "charts/safety-gate/crds must define OscillationPattern"
    for name in cluster.installed_crds:
        crd = cluster.kubectl_json("get", "crd", name)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True", name

    oa = cluster.kubectl_json("get", "crd", OA_CRD)["spec"]
    op = cluster.kubectl_json("get", "crd", OP_CRD)["spec"]
    assert (oa["scope"], oa["names"]["kind"]) == ("Namespaced", "OscillationAlert")
    assert "oa" in oa["names"].get("shortNames", [])
    assert (op["scope"], op["names"]["kind"]) == ("Cluster", "OscillationPattern")
    assert "op" in op["names"].get("shortNames", [])
    assert any(v["name"] == "v1" and v["served"] for v in oa["versions"])


def test_kubectl_get_oa(cluster: ControlPlane, namespace: str):
    res = cluster.kubectl("get", "oa", "--all-namespaces")
    assert res.returncode == 0, res.stderr
    assert cluster.kubectl_json("get", "oa", namespace=namespace)["items"] == []
    res = cluster.kubectl("get", "op")
    assert res.returncode == 0, res.stderr
    # A name that is no resource fails: the successes above are not vacuous.
    bad = cluster.kubectl("get", "oscillationalertz")
    assert bad.returncode != 0 and "doesn't have a resource type" in bad.stderr


def test_scale_deployment_and_statefulset(cluster: ControlPlane, namespace: str):
    cluster.apply([deployment("cart", namespace), statefulset("db", namespace)])
    assert replicas(cluster, "deployment", "cart", namespace) == 1

    cluster.kubectl("scale", "deployment/cart", "--replicas=3", namespace=namespace, check=True)
    assert replicas(cluster, "deployment", "cart", namespace) == 3
    status, body = cluster.api_get(f"/apis/apps/v1/namespaces/{namespace}/deployments/cart/scale")
    assert status == 200, body
    scale = json.loads(body)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3

    cluster.kubectl("scale", "statefulset/db", "--replicas=2", namespace=namespace, check=True)
    assert replicas(cluster, "statefulset", "db", namespace) == 2

    missing = cluster.kubectl("scale", "deployment/nope", "--replicas=2", namespace=namespace)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_impersonated_service_account_is_subject_to_rbac(cluster: ControlPlane, namespace: str):
    agent = service_account(namespace, "remediation-agent")
    cluster.apply(deployment("cart", namespace))

    me = cluster.kubectl_json("auth", "whoami", as_user=agent)["status"]["userInfo"]
    assert me["username"] == agent
    assert {"system:serviceaccounts", f"system:serviceaccounts:{namespace}"} <= set(me["groups"])

    denied = cluster.kubectl("scale", "deployment/cart", "--replicas=2", namespace=namespace, as_user=agent)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr and agent in denied.stderr
    assert replicas(cluster, "deployment", "cart", namespace) == 1

    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "scaler", "namespace": namespace},
         "rules": [{"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"],
                    "verbs": ["get", "list", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "scaler", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scaler"},
         "subjects": [{"kind": "ServiceAccount", "name": "remediation-agent", "namespace": namespace}]},
    ])
    wait_for(
        lambda: cluster.kubectl("auth", "can-i", "update", "deployments/scale", namespace=namespace,
                                as_user=agent).stdout.strip() == "yes",
        timeout=30, description="RBAC to grant the role",
    )
    cluster.kubectl("scale", "deployment/cart", "--replicas=2", namespace=namespace, as_user=agent,
                    check=True)
    assert replicas(cluster, "deployment", "cart", namespace) == 2
    fields = cluster.kubectl_json("get", "deployment", "cart", "--show-managed-fields", namespace=namespace)
    assert fields["metadata"]["name"] == "cart"

    # --as-group is passed through as well.
    me = cluster.kubectl_json("auth", "whoami", as_user="jane", as_groups=["oncall", "sre"])["status"]["userInfo"]
    assert me["username"] == "jane" and {"oncall", "sre"} <= set(me["groups"])


def test_pipelinerun_create_in_v1_and_v1beta1(cluster: ControlPlane, namespace: str):
    cluster.apply(pipelinerun("scale-cart-1", namespace))
    got = cluster.kubectl_json("get", "pipelineruns.v1.tekton.dev", "scale-cart-1", namespace=namespace)
    assert got["apiVersion"] == "tekton.dev/v1"
    assert got["spec"]["params"][0] == {"name": "TARGET_RESOURCE", "value": f"{namespace}/Deployment/cart"}

    cluster.kubectl("create", "-f", "-", input=json.dumps(pipelinerun("scale-cart-2", namespace,
                                                                      "tekton.dev/v1beta1")), check=True)
    old = cluster.kubectl_json("get", "pipelineruns.v1beta1.tekton.dev", "scale-cart-2", namespace=namespace)
    assert old["apiVersion"] == "tekton.dev/v1beta1"
    names = {i["metadata"]["name"] for i in cluster.kubectl_json("get", "pr", namespace=namespace)["items"]}
    assert names == {"scale-cart-1", "scale-cart-2"}


# --------------------------------------------------------------------------
# webhook registration by URL + caBundle

DENY_MESSAGE = "e2e-deny-all: refused by the harness test server"


class DenyAllServer:
    """A tiny HTTPS admission endpoint (test peer) that refuses every request."""

    def __init__(self, tmp: Path):
        self.ca = CertificateAuthority("e2e-deny-all-ca")
        cert, key = self.ca.issue_localhost_server("e2e-deny-all")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(write_pem(tmp / "deny.crt", cert), write_pem(tmp / "deny.key", key, private=True))
        self.reviews: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.reviews.append({"path": self.path, **review["request"]})
                body = json.dumps({
                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": review["request"]["uid"], "allowed": False,
                                 "status": {"code": 403, "message": DENY_MESSAGE}},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/validate"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join(10)
        self.httpd.server_close()

    def seen(self, namespace: str) -> list[dict]:
        return [r for r in list(self.reviews) if r.get("namespace") == namespace]


@pytest.fixture
def deny_all(tmp_path: Path):
    server = DenyAllServer(tmp_path)
    yield server
    server.stop()


def test_webhook_registered_by_url_refuses_scale(cluster: ControlPlane, deny_all: DenyAllServer):
    gate_ns = cluster.create_namespace("safety-gate-system")
    target = cluster.create_namespace("shop")
    opted_out = cluster.create_namespace("legacy", labels={OPT_OUT_LABEL: "disabled"})
    for ns in (gate_ns, target, opted_out, "kube-system"):
        cluster.apply(deployment("cart", ns))
    cluster.apply(statefulset("db", target))

    reg = register_webhook(cluster, deny_all.url, deny_all.ca.cert_pem, gate_ns)
    try:
        if (CHART_DIR / WEBHOOK_TEMPLATE).is_file():
            assert reg.source == "chart", "the chart exists: its webhook settings must be the ones tested"

        # The configuration the API server stored: the chart's settings, our URL and bundle.
        stored = cluster.kubectl_json("get", "validatingwebhookconfiguration", reg.name)
        [wh] = stored["webhooks"]
        assert wh["name"] == WEBHOOK_NAME
        assert wh["clientConfig"]["url"] == deny_all.url
        assert base64.b64decode(wh["clientConfig"]["caBundle"]) == deny_all.ca.cert_pem
        assert "service" not in wh["clientConfig"]
        assert (wh["failurePolicy"], wh["timeoutSeconds"], wh["sideEffects"], wh["matchPolicy"]) == (
            "Ignore", 3, "NoneOnDryRun", "Equivalent")
        resources = {r for rule in wh["rules"] for r in rule["resources"]}
        assert {"deployments", "deployments/scale", "statefulsets", "statefulsets/scale",
                "pipelineruns"} <= resources
        excluded = {v for e in wh["namespaceSelector"]["matchExpressions"]
                    if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"
                    for v in e["values"]}
        assert {"kube-system", gate_ns} <= excluded

        # The API server picks the configuration up asynchronously: scale to a
        # new value until a scale is refused, then check nothing changed.
        attempt = {"n": 1}

        def refused():
            attempt["n"] += 1
            res = cluster.kubectl("scale", "deployment/cart", f"--replicas={attempt['n']}", namespace=target)
            return res if res.returncode != 0 else None

        res = wait_for(refused, timeout=30, interval=0.2, description="the webhook to refuse a scale")
        assert f'admission webhook "{WEBHOOK_NAME}" denied the request: {DENY_MESSAGE}' in res.stderr
        assert replicas(cluster, "deployment", "cart", target) == attempt["n"] - 1

        scale_reviews = [r for r in deny_all.seen(target) if r.get("subResource") == "scale"]
        assert scale_reviews, deny_all.reviews
        req = scale_reviews[-1]
        # The API server appends the webhook's timeout; the gate must accept the query string.
        assert req["path"] == "/validate?timeout=3s"
        assert req["operation"] == "UPDATE"
        assert req["kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        assert req["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
        assert req["userInfo"]["username"] == ControlPlane.ADMIN_USER
        assert req["oldObject"]["spec"]["replicas"] == attempt["n"] - 1
        assert req["object"]["spec"]["replicas"] == attempt["n"]

        # Every intercepted kind of request reaches the server and is refused.
        for args, kw in [
            (("rollout", "restart", "deployment/cart"), {}),
            (("scale", "statefulset/db", "--replicas=4"), {}),
            (("scale", "deployment/cart", "--replicas=9", "--dry-run=server"), {}),
            (("create", "-f", "-"), {"input": json.dumps(pipelinerun("run-v1", target))}),
            (("create", "-f", "-"), {"input": json.dumps(pipelinerun("run-v1beta1", target, "tekton.dev/v1beta1"))}),
        ]:
            out = cluster.kubectl(*args, namespace=target, **kw)
            assert out.returncode != 0 and DENY_MESSAGE in out.stderr, (args, out.stderr)
        assert replicas(cluster, "statefulset", "db", target) == 1
        assert cluster.kubectl_json("get", "pr", namespace=target)["items"] == []
        seen = deny_all.seen(target)
        assert any(r.get("dryRun") for r in seen)
        assert {(r["resource"]["version"], r["operation"]) for r in seen
                if r["resource"]["group"] == "tekton.dev"} == {("v1", "CREATE"), ("v1beta1", "CREATE")}
        assert any(r["resource"]["resource"] == "statefulsets" and r.get("subResource") == "scale" for r in seen)

        # Not intercepted: CREATE of a Deployment, the gate's namespace,
        # kube-system and an opted-out namespace.
        cluster.apply(deployment("new", target))
        for ns in (gate_ns, "kube-system", opted_out):
            cluster.kubectl("scale", "deployment/cart", "--replicas=5", namespace=ns, check=True)
            assert replicas(cluster, "deployment", "cart", ns) == 5
            assert deny_all.seen(ns) == []

        # failurePolicy Ignore: with the endpoint gone, changes go through.
        deny_all.stop()
        cluster.kubectl("scale", "deployment/cart", "--replicas=7", namespace=target, check=True)
        assert replicas(cluster, "deployment", "cart", target) == 7
    finally:
        reg.unregister(cluster)
