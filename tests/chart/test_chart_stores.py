"""The stores a default install brings along, and the switch to external ones (DESIGN §8)."""

from __future__ import annotations

import os

import pytest
import yaml
from chart_helpers import CHART, FULLNAME, NAMESPACE, env_of, find, hooks, one, render, run_helm

from webhook.settings import Settings

PG = f"{FULLNAME}-postgresql"
REDIS = f"{FULLNAME}-redis"
EXTERNAL_DSN = "postgresql://gate:pw@pg.db.svc:5432/gate"


def gate_container(docs: list[dict]) -> dict:
    return one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]


def pod_specs(docs: list[dict]) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
            for d in docs if d.get("kind") in ("Deployment", "StatefulSet", "Job", "DaemonSet")}


def test_default_install_brings_postgresql_and_redis(helm_bin):
    docs = render()
    sts = one(docs, "StatefulSet", PG)
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert "UTF8" in env["POSTGRES_INITDB_ARGS"]["value"]
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": PG, "key": "postgres-password"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    secret = one(docs, "Secret", PG)
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    password = secret["stringData"]["postgres-password"]
    assert len(password) == 32 and password.isalnum()
    assert secret["stringData"]["postgres-dsn"] == \
        f"postgresql://safety_gate:{password}@{PG}.{NAMESPACE}.svc:5432/safety_gate"
    assert one(docs, "Service", PG)["spec"]["ports"][0]["port"] == 5432

    redis = one(docs, "Deployment", REDIS)["spec"]["template"]["spec"]["containers"][0]
    assert redis["args"][:3] == ["redis-server", "--requirepass", "$(REDIS_PASSWORD)"]
    redis_secret = one(docs, "Secret", REDIS)["stringData"]
    assert redis_secret["redis-url"] == f"redis://:{redis_secret['redis-password']}@{REDIS}.{NAMESPACE}.svc:6379/0"

    gate = env_of(gate_container(docs))
    assert gate["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {"name": PG, "key": "postgres-dsn"}
    assert gate["SAFETY_GATE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": REDIS, "key": "redis-url"}


def test_default_install_migrates_before_the_gate_serves(helm_bin):
    docs = render()
    # The database is part of the release (created after pre-install hooks): the Job runs post-install...
    job = one(docs, "Job", f"{FULLNAME}-migrate")
    assert hooks(job) == {"post-install", "pre-upgrade"}
    assert "safety-gate migrate" in job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    # ...and every gate pod migrates (idempotent, advisory lock) in an init container first.
    init = one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["migrate"]
    assert "for attempt in $(seq 150)" in init[0]["args"][0] and "safety-gate migrate" in init[0]["args"][0]
    assert env_of(init[0])["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]["name"] == PG


@pytest.mark.parametrize("sets", [
    ("postgresql.enabled=false", f"postgresql.dsn={EXTERNAL_DSN}"),
    (f"postgresql.dsn={EXTERNAL_DSN}",),  # a DSN wins over the bundled database
])
def test_an_external_postgresql_replaces_the_bundled_one(helm_bin, sets):
    docs = render(sets=sets)
    assert find(docs, "StatefulSet") == []
    assert find(docs, "Secret", PG) == []
    assert hooks(one(docs, "Job", f"{FULLNAME}-migrate")) == {"pre-install", "pre-upgrade"}
    assert "initContainers" not in one(docs, "Deployment", FULLNAME)["spec"]["template"]["spec"]
    dsn = env_of(gate_container(docs))["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]
    assert dsn == {"name": f"{FULLNAME}-datastores", "key": "postgres-dsn"}
    assert one(docs, "Deployment", REDIS)  # Redis is switched on its own


def test_existing_secrets_for_both_stores(helm_bin):
    docs = render(sets=("postgresql.enabled=false", "postgresql.existingSecret=pg-app",
                        "postgresql.existingSecretKey=uri", "redis.enabled=false", "redis.existingSecret=cache"))
    assert find(docs, "StatefulSet") == [] and find(docs, "Deployment", REDIS) == []
    env = env_of(gate_container(docs))
    assert env["SAFETY_GATE_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "pg-app", "key": "uri"}
    assert env["SAFETY_GATE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "cache", "key": "redis-url"}


def test_both_disabled_without_external_stores_renders_no_store(helm_bin):
    docs = render(sets=("postgresql.enabled=false", "redis.enabled=false"))
    env = env_of(gate_container(docs))
    assert "SAFETY_GATE_POSTGRES_DSN" not in env and "SAFETY_GATE_REDIS_URL" not in env
    assert find(docs, "Job", f"{FULLNAME}-migrate") == []


def test_persistence_off_and_a_storage_class(helm_bin):
    off = one(render(sets=("postgresql.persistence.enabled=false",)), "StatefulSet", PG)["spec"]
    assert "volumeClaimTemplates" not in off
    assert {"name": "data", "emptyDir": {}} in off["template"]["spec"]["volumes"]
    on = one(render(sets=("postgresql.persistence.storageClass=fast",)), "StatefulSet", PG)["spec"]
    assert on["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"


def test_the_stores_accept_only_the_releases_pods(helm_bin):
    docs = render()
    for name, port in ((PG, 5432), (REDIS, 6379)):
        policy = one(docs, "NetworkPolicy", name)["spec"]
        assert policy["policyTypes"] == ["Ingress"]
        assert policy["ingress"][0]["ports"] == [{"port": port, "protocol": "TCP"}]
        assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "sg"
    assert find(render(sets=("networkPolicy.enabled=false",)), "NetworkPolicy") == []


def test_every_pod_disables_service_links(helm_bin):
    specs = pod_specs(render())
    assert {"Deployment/" + FULLNAME, "StatefulSet/" + PG, "Deployment/" + REDIS,
            f"Job/{FULLNAME}-migrate", f"Job/{FULLNAME}-cleanup"} <= set(specs)
    assert {name: spec.get("enableServiceLinks") for name, spec in specs.items()} == \
        dict.fromkeys(specs, False)


def service_link_env(services: list[dict]) -> dict[str, str]:
    """What the kubelet would inject for these Services without enableServiceLinks: false."""
    env = {}
    for service in services:
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        ip = "10.96.0.10"
        ports = service["spec"]["ports"]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        env[f"{prefix}_PORT"] = f"tcp://{ip}:{ports[0]['port']}"
        for port in ports:
            base = f"{prefix}_PORT_{port['port']}_TCP"
            env.update({base: f"tcp://{ip}:{port['port']}", f"{base}_PROTO": "tcp", f"{base}_PORT": str(port["port"]),
                        f"{base}_ADDR": ip})
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
    return env


def test_a_release_named_safety_gate_would_collide_with_the_settings_prefix(helm_bin, monkeypatch):
    """The bug of issue 14: Service `safety-gate` -> SAFETY_GATE_PORT=tcp://..., which the
    settings read as the port. The pods disable service links; the settings ignore such values."""
    out = run_helm("template", "safety-gate", str(CHART), "-n", "safety-gate", check=True).stdout
    services = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Service"]
    assert "safety-gate" in {s["metadata"]["name"] for s in services}
    links = service_link_env(services)
    assert links["SAFETY_GATE_PORT"].startswith("tcp://")
    assert links["SAFETY_GATE_METRICS_PORT"].startswith("tcp://")
    for name in [k for k in os.environ if k.startswith("SAFETY_GATE_")]:
        monkeypatch.delenv(name)
    for name, value in links.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.port == 8443 and settings.metrics_port == 0
    monkeypatch.setenv("SAFETY_GATE_PORT", "9443")  # a real setting still counts
    assert Settings().port == 9443
