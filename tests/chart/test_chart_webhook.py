"""The ValidatingWebhookConfiguration: what is gated, where, and how it fails."""

from __future__ import annotations

import base64

import pytest
import yaml
from chart_helpers import FULLNAME, NAMESPACE, WEBHOOK_FILE, one, render, render_text

WEBHOOK_NAME = "validate.safety-gate.ai.prometheus-alerts-slm.io"


def webhook_of(*values, **kw) -> dict:
    vwc = one(render(*values, **kw), "ValidatingWebhookConfiguration")
    assert len(vwc["webhooks"]) == 1
    return vwc["webhooks"][0]


def test_file_is_exactly_one_document(helm_bin):
    """The e2e harness renders this one file and swaps clientConfig.service for a URL."""
    for kv in ("1.29.0", "1.31.0"):
        text = render_text(show_only=[WEBHOOK_FILE], kube_version=kv)
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert len(docs) == 1
        assert docs[0]["kind"] == "ValidatingWebhookConfiguration"
        assert docs[0]["apiVersion"] == "admissionregistration.k8s.io/v1"


def test_defaults(helm_bin):
    wh = webhook_of()
    assert wh["name"] == WEBHOOK_NAME
    assert wh["failurePolicy"] == "Ignore"
    assert wh["timeoutSeconds"] == 3
    assert wh["sideEffects"] == "NoneOnDryRun"
    assert wh["admissionReviewVersions"] == ["v1"]
    assert wh["matchPolicy"] == "Equivalent"
    assert wh["clientConfig"]["service"] == {
        "name": FULLNAME,
        "namespace": NAMESPACE,
        "path": "/validate",
        "port": 443,
    }


def test_failure_policy_fail(helm_bin):
    wh = webhook_of("failure-policy-fail.yaml")
    assert wh["failurePolicy"] == "Fail"
    assert wh["timeoutSeconds"] == 5


def test_rules(helm_bin):
    rules = webhook_of()["rules"]
    assert rules == [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["deployments", "deployments/scale", "statefulsets", "statefulsets/scale"],
            "scope": "Namespaced",
        },
        {
            "apiGroups": ["tekton.dev"],
            "apiVersions": ["v1", "v1beta1"],
            "operations": ["CREATE"],
            "resources": ["pipelineruns"],
            "scope": "Namespaced",
        },
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE", "UPDATE"], "resources": ["pods"],
         "scope": "Namespaced"},
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods/eviction"],
         "scope": "Namespaced"},
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["persistentvolumeclaims"],
         "scope": "Namespaced"},
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["nodes"],
         "scope": "Cluster"},
    ]


def test_the_pod_node_and_pvc_rules_carry_their_match_conditions(helm_bin):
    conditions = {c["name"]: c["expression"] for c in webhook_of(kube_version="1.31.0")["matchConditions"]}
    assert {"pods-not-by-cluster-machinery", "pod-updates-only-quarantine", "nodes-only-schedulability",
            "pvcs-only-storage-requests"} <= set(conditions)
    # Each condition leaves the other resources alone: it starts by passing them.
    assert conditions["pods-not-by-cluster-machinery"].startswith("request.resource.resource != 'pods' ||")
    assert "system:node:" in conditions["pods-not-by-cluster-machinery"]
    assert conditions["nodes-only-schedulability"].startswith("request.resource.resource != 'nodes' ||")
    assert conditions["pvcs-only-storage-requests"].startswith(
        "request.resource.resource != 'persistentvolumeclaims' ||")


def _excluded(wh) -> tuple[list[str], list[dict]]:
    exprs = wh["namespaceSelector"]["matchExpressions"]
    by_key = {e["key"]: e for e in exprs}
    names = by_key["kubernetes.io/metadata.name"]
    assert names["operator"] == "NotIn"
    return names["values"], exprs


def test_namespace_selector_excludes_kube_system_release_namespace_and_opt_out(helm_bin):
    names, exprs = _excluded(webhook_of(namespace="gate-system"))
    assert set(names) == {"kube-system", "gate-system"}
    opt_out = [e for e in exprs if e["key"] == "ai.prometheus-alerts-slm.io/safety-gate"]
    assert opt_out == [{"key": "ai.prometheus-alerts-slm.io/safety-gate", "operator": "NotIn", "values": ["disabled"]}]


def test_namespace_selector_follows_the_release_namespace(helm_bin):
    names, _ = _excluded(webhook_of(namespace="other-ns"))
    assert set(names) == {"kube-system", "other-ns"}
    wh = webhook_of(namespace="other-ns")
    assert wh["clientConfig"]["service"]["namespace"] == "other-ns"


def test_namespace_selector_extra_exclusions(helm_bin):
    names, _ = _excluded(webhook_of("policies.yaml"))
    assert set(names) == {"kube-system", NAMESPACE, "monitoring", "cert-manager"}


def test_kube_system_as_release_namespace_is_listed_once(helm_bin):
    names, _ = _excluded(webhook_of(namespace="kube-system"))
    assert names == ["kube-system"]


OWN_SA = f"request.userInfo.username != 'system:serviceaccount:{NAMESPACE}:{FULLNAME}'"


@pytest.mark.parametrize(
    ("kube_version", "sets", "expected"),
    [
        ("1.29.0", (), False),
        ("1.30.0", (), True),
        ("1.31.2", (), True),
        ("1.29.0", ("webhook.matchConditions.mode=always",), True),
        ("1.31.0", ("webhook.matchConditions.mode=never",), False),
    ],
)
def test_match_conditions_by_kubernetes_version(helm_bin, kube_version, sets, expected):
    wh = webhook_of(kube_version=kube_version, sets=sets)
    if expected:
        assert {"name": "not-safety-gate-itself", "expression": OWN_SA} in wh["matchConditions"]
    else:
        assert "matchConditions" not in wh


def test_match_conditions_extra(helm_bin):
    wh = webhook_of("policies.yaml", kube_version="1.29.0")  # mode: always
    names = [c["name"] for c in wh["matchConditions"]]
    assert names == ["not-safety-gate-itself", "pods-not-by-cluster-machinery", "pod-updates-only-quarantine",
                     "nodes-only-schedulability", "pvcs-only-storage-requests", "not-flux"]


def test_ca_bundle_self_managed_is_left_to_the_gate(helm_bin):
    vwc = one(render(), "ValidatingWebhookConfiguration")
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
    assert "cert-manager.io/inject-ca-from" not in (vwc["metadata"].get("annotations") or {})


def test_ca_bundle_cert_manager_is_injected(helm_bin):
    docs = render("cert-manager.yaml")
    vwc = one(docs, "ValidatingWebhookConfiguration")
    ref = vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    ns, name = ref.split("/")
    assert ns == NAMESPACE
    cert = one(docs, "Certificate", name)
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
    assert cert["spec"]["secretName"] == f"{FULLNAME}-tls"


def test_ca_bundle_secret_mode_comes_from_values(helm_bin):
    wh = webhook_of("existing-secrets.yaml")
    ca = wh["clientConfig"]["caBundle"]
    assert base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----")


def test_service_matches_webhook_client_config(helm_bin, default_docs):
    wh = one(default_docs, "ValidatingWebhookConfiguration")["webhooks"][0]
    svc = one(default_docs, "Service", wh["clientConfig"]["service"]["name"])
    port = next(p for p in svc["spec"]["ports"] if p["port"] == wh["clientConfig"]["service"]["port"])
    assert port["targetPort"] == "https"
    deploy = one(default_docs, "Deployment", FULLNAME)
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "https", "containerPort": 8443, "protocol": "TCP"} in container["ports"]
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items())
