"""The gate's Deployment, PDB, Services, NetworkPolicy and configuration env."""

from __future__ import annotations

import json

from chart_helpers import CHART, FULLNAME, NAMESPACE, RELEASE, env_of, find, one, render, run_helm

SELECTOR = {
    "app.kubernetes.io/name": "safety-gate",
    "app.kubernetes.io/instance": "sg",
    "app.kubernetes.io/component": "webhook",
}


def pod_spec(docs):
    return one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]


def gate(docs):
    containers = pod_spec(docs)["containers"]
    assert [c["name"] for c in containers] == ["safety-gate"]
    return containers[0]


def test_replicas_labels_and_image(default_docs):
    deploy = one(default_docs, "Deployment", FULLNAME)
    assert deploy["metadata"]["namespace"] == NAMESPACE
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["selector"]["matchLabels"] == SELECTOR
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= labels.items()
    for key in ("app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"):
        assert key in deploy["metadata"]["labels"]
    c = gate(default_docs)
    assert c["image"] == "ghcr.io/safety-gate/safety-gate:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["args"] == ["serve", "--host", "0.0.0.0", "--port", "8443", "--metrics-port", "9090", "--workers", "1"]
    assert "command" not in c  # the image's ENTRYPOINT is safety-gate


def test_security_context(default_docs):
    spec = pod_spec(default_docs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 65532
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = gate(default_docs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_resources_probes_and_volumes(default_docs):
    c = gate(default_docs)
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert c["resources"]["limits"]["memory"] == "512Mi"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"https": 8443, "http-metrics": 9090}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(default_docs)["volumes"]}
    for path in ("/var/lib/safety-gate", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path


def test_anti_affinity(helm_bin, default_docs):
    terms = pod_spec(default_docs)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == SELECTOR
    hard = pod_spec(render("failure-policy-fail.yaml"))["affinity"]["podAntiAffinity"]
    assert hard["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert "affinity" not in pod_spec(render("ha-off.yaml"))


def test_topology_spread_and_priority_class(helm_bin):
    spec = pod_spec(render("policies.yaml"))
    assert spec["priorityClassName"] == "system-cluster-critical"
    (tsc,) = spec["topologySpreadConstraints"]
    assert tsc["topologyKey"] == "topology.kubernetes.io/zone"
    assert tsc["labelSelector"] == {"matchLabels": SELECTOR}
    assert "topologySpreadConstraints" not in pod_spec(render())


def test_pdb(default_docs):
    pdb = one(default_docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == SELECTOR


def test_ha_off(helm_bin):
    docs = render("ha-off.yaml")
    deploy = one(docs, "Deployment", FULLNAME)
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert not find(docs, "PodDisruptionBudget")  # minAvailable 1 of 1 would block every drain
    assert not find(docs, "NetworkPolicy")


def test_default_environment(default_docs):
    env = env_of(gate(default_docs))
    assert env["SAFETY_GATE_DATA_DIR"]["value"] == "/var/lib/safety-gate"
    assert env["SAFETY_GATE_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["SAFETY_GATE_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["SAFETY_GATE_CLUSTER_ID"]["value"] == "default"
    assert env["SAFETY_GATE_LOG_LEVEL"]["value"] == "INFO"  # Python logging level names
    assert env["SAFETY_GATE_IN_CLUSTER"]["value"] == "true"
    assert env["SAFETY_GATE_FAIL_CLOSED"]["value"] == "false"
    assert json.loads(env["SAFETY_GATE_OBSERVED_USERS"]["value"]) == [
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        "system:kube-controller-manager",
        "system:serviceaccount:keda:keda-operator",
    ]
    assert json.loads(env["SAFETY_GATE_OBSERVED_GROUPS"]["value"]) == ["system:masters"]
    assert json.loads(env["SAFETY_GATE_BYPASS_SUBJECTS"]["value"]) == []
    # self-managed certificates
    assert env["SAFETY_GATE_CERT_SECRET"]["value"] == f"{FULLNAME}-tls"
    assert env["SAFETY_GATE_WEBHOOK_CONFIG"]["value"] == FULLNAME
    assert env["SAFETY_GATE_SERVICE_NAME"]["value"] == FULLNAME
    assert env["SAFETY_GATE_CA_VALIDITY"]["value"] == "87600h"
    assert env["SAFETY_GATE_CERT_VALIDITY"]["value"] == "8760h"
    assert env["SAFETY_GATE_CERT_RENEW_BEFORE"]["value"] == "720h"
    # nothing configured -> the chart's own stores, no policy file, no mounted TLS
    assert env["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]["name"] == f"{FULLNAME}-postgresql"
    assert env["SAFETY_GATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == f"{FULLNAME}-redis"
    for absent in ("SAFETY_GATE_POLICY", "SAFETY_GATE_TLS_CERT", "SAFETY_GATE_TLS_KEY"):
        assert absent not in env
    assert all(name.startswith("SAFETY_GATE_") for name in env)


def test_configured_environment(helm_bin):
    docs = render("policies.yaml")
    env = env_of(gate(docs))
    assert env["SAFETY_GATE_CLUSTER_ID"]["value"] == "prod-eu-1"
    assert env["SAFETY_GATE_FAIL_CLOSED"]["value"] == "true"
    assert json.loads(env["SAFETY_GATE_BYPASS_SUBJECTS"]["value"]) == [
        "system:serviceaccount:ops:break-glass", "group:sre"]
    assert env["SAFETY_GATE_POLICY"]["value"] == "/etc/safety-gate/policy/policy.yaml"
    cm = one(docs, "ConfigMap", f"{FULLNAME}-policy")
    assert "kind: OscillationPattern" in cm["data"]["policy.yaml"]
    mount = next(m for m in gate(docs)["volumeMounts"] if m["mountPath"] == "/etc/safety-gate/policy")
    volume = next(v for v in pod_spec(docs)["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == cm["metadata"]["name"]


def test_datastores_from_values_secret(helm_bin):
    docs = render("cert-manager.yaml")
    env = env_of(gate(docs))
    secret = one(docs, "Secret", f"{FULLNAME}-datastores")
    assert env["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"], "key": "postgres-dsn"}
    assert env["SAFETY_GATE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"], "key": "redis-url"}
    assert set(secret["stringData"]) == {"postgres-dsn", "redis-url"}


def test_datastores_from_existing_secrets(helm_bin):
    docs = render("existing-secrets.yaml")
    env = env_of(gate(docs))
    assert env["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "safety-gate-db", "key": "dsn"}
    assert env["SAFETY_GATE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "safety-gate-redis", "key": "redis-url"}
    assert not find(docs, "Secret")  # nothing created from values


def test_mounted_certificates(helm_bin):
    for values, secret in (("cert-manager.yaml", f"{FULLNAME}-tls"),
                           ("existing-secrets.yaml", "safety-gate-serving-cert")):
        docs = render(values)
        c = gate(docs)
        env = env_of(c)
        assert env["SAFETY_GATE_TLS_CERT"]["value"] == "/etc/safety-gate/tls/tls.crt"
        assert env["SAFETY_GATE_TLS_KEY"]["value"] == "/etc/safety-gate/tls/tls.key"
        assert "SAFETY_GATE_CERT_SECRET" not in env
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/safety-gate/tls")
        volume = next(v for v in pod_spec(docs)["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == secret


def test_cert_manager_chain(helm_bin):
    docs = render("cert-manager.yaml")
    issuers = {d["metadata"]["name"]: d for d in find(docs, "Issuer")}
    certs = {d["metadata"]["name"]: d for d in find(docs, "Certificate")}
    assert issuers[f"{FULLNAME}-selfsigned"]["spec"] == {"selfSigned": {}}
    ca = certs[f"{FULLNAME}-ca"]["spec"]
    assert ca["isCA"] is True and ca["issuerRef"]["name"] == f"{FULLNAME}-selfsigned"
    assert issuers[f"{FULLNAME}-ca"]["spec"] == {"ca": {"secretName": ca["secretName"]}}
    serving = certs[f"{FULLNAME}-tls"]["spec"]
    assert serving["issuerRef"]["name"] == f"{FULLNAME}-ca"
    assert serving["duration"] == "2160h"
    assert f"{FULLNAME}.{NAMESPACE}.svc" in serving["dnsNames"]
    assert f"{FULLNAME}.{NAMESPACE}.svc.cluster.local" in serving["dnsNames"]
    assert not find(render(), "Certificate")


def test_network_policy(default_docs):
    np = one(default_docs, "NetworkPolicy", FULLNAME)
    assert np["spec"]["podSelector"]["matchLabels"] == SELECTOR
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    webhook_rule, metrics_rule = np["spec"]["ingress"][:2]
    assert webhook_rule["ports"] == [{"port": "https", "protocol": "TCP"}]
    assert "from" not in webhook_rule  # API server addresses vary
    assert metrics_rule["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert "namespaceSelector" in metrics_rule["from"][0]
    egress_ports = {(p["port"], p["protocol"]) for r in np["spec"]["egress"] for p in r["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (5432, "TCP"), (6379, "TCP")} <= egress_ports


def test_network_policy_is_configurable(helm_bin):
    docs = render(sets=("networkPolicy.metrics.namespaceSelector.matchLabels.team=monitoring",
                        "networkPolicy.egress.postgresql.ports={6432}",
                        "networkPolicy.egress.apiServer.cidrs={10.0.0.1/32}"))
    np = one(docs, "NetworkPolicy", FULLNAME)
    assert np["spec"]["ingress"][1]["from"][0]["namespaceSelector"] == {"matchLabels": {"team": "monitoring"}}
    egress_ports = {p["port"] for r in np["spec"]["egress"] for p in r["ports"]}
    assert 6432 in egress_ports and 5432 not in egress_ports
    api = next(r for r in np["spec"]["egress"] if {"port": 6443, "protocol": "TCP"} in r["ports"])
    assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]


def test_metrics_service(default_docs):
    svc = one(default_docs, "Service", f"{FULLNAME}-metrics")
    assert svc["spec"]["ports"] == [{"name": "http-metrics", "port": 9090, "targetPort": "http-metrics",
                                     "protocol": "TCP"}]
    assert svc["spec"]["selector"] == SELECTOR
    assert not find(default_docs, "ServiceMonitor")
    assert not find(default_docs, "PrometheusRule")


def test_workers_value_is_the_serve_flag():
    """webhook.workers becomes ``serve --workers``; the schema refuses a pod without a worker."""
    c = gate(render(sets=["webhook.workers=2"]))
    assert c["args"][-2:] == ["--workers", "2"]
    refused = run_helm("template", RELEASE, str(CHART), "--set", "webhook.workers=0")
    assert refused.returncode != 0 and "workers" in refused.stderr
