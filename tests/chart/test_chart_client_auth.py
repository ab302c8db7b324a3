"""webhook.clientAuth: /validate only from the API server's client certificate (issue 13, item 1)."""

from __future__ import annotations

from chart_helpers import CHART, FULLNAME, env_of, one, render, run_helm


def container(docs: list[dict]) -> dict:
    return one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]


def test_off_by_default(default_docs):
    gate = container(default_docs)
    assert "SAFETY_GATE_VALIDATE_CLIENT_CA" not in env_of(gate)
    assert all(m["name"] != "client-ca" for m in gate.get("volumeMounts", []))


def test_on_mounts_the_ca_and_points_the_gate_at_it(helm_bin):
    docs = render(sets=["webhook.clientAuth.enabled=true", "webhook.clientAuth.caConfigMap=apiserver-client-ca",
                        "webhook.clientAuth.caKey=client-ca.pem"])
    gate = container(docs)
    assert env_of(gate)["SAFETY_GATE_VALIDATE_CLIENT_CA"]["value"] == "/etc/safety-gate/client-ca/client-ca.pem"
    [mount] = [m for m in gate["volumeMounts"] if m["name"] == "client-ca"]
    assert mount["mountPath"] == "/etc/safety-gate/client-ca" and mount["readOnly"] is True
    volumes = one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == "client-ca"]
    assert volume["configMap"]["name"] == "apiserver-client-ca"


def test_on_without_a_ca_is_refused_at_render(helm_bin):
    failed = run_helm("template", "sg", str(CHART), "--set", "webhook.clientAuth.enabled=true")
    assert failed.returncode != 0
    assert "webhook.clientAuth.caConfigMap is required" in failed.stderr
