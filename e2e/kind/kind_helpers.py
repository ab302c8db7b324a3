"""The kind suite's fixtures and helpers (conftest.py re-exports the fixtures and hooks).

A real cluster, the gate installed by its Helm chart with default values.

One session-scoped cluster (``kind_cluster``): kind v0.33.0 creates it (a leftover of the
same name is deleted first), the gate's image and the stores' images are loaded into it,
and ``helm install safety-gate charts/safety-gate`` runs with default values (only the image
references point at the locally built images). The tests then drive the release through
the real API server: agents are impersonated service accounts, the HPA is kind's own
kube-controller-manager.

Images: with no registry reachable (the default), e2e/kind/build-tools.sh and
e2e/kind/build-images.sh build the node image and every other image from Go modules and
Debian packages, cached under ~/.cache/safety-gate/kind keyed by version (see README.md).

Environment:
  SAFETY_GATE_KIND=0           opt out: every kind test is skipped, saying so (CI never sets it)
  SAFETY_GATE_KIND_ONLINE=1    a machine with registry access: kind's default node image
                               (kindest/node), the chart's default store images, the gate's
                               image from the official python base
  SAFETY_GATE_KIND_KEEP=1      leave the cluster (and the release's remains) running afterwards
  SAFETY_GATE_KIND_CACHE       cache root (default ~/.cache/safety-gate/kind)

Without a usable Docker the suite FAILS with the reason (never a quiet skip).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # e2e/: cluster.py

from cluster import ExistingCluster, ensure_binaries, wait_for  # noqa: E402

KIND_DIR = Path(__file__).resolve().parent
REPO = KIND_DIR.parents[1]
CLUSTER_NAME = "safety-gate-kind"
RELEASE = "safety-gate"
NAMESPACE = "safety-gate"
FULLNAME = "safety-gate"  # the release name contains the chart name
POSTGRES = f"{FULLNAME}-postgresql"
PROBE_NAMESPACE = "kind-probe"
WEBHOOK = "validate.safety-gate.ai.prometheus-alerts-slm.io"
DENIED = f'admission webhook "{WEBHOOK}" denied the request'
CAP_SYS_RESOURCE = 24

OPTED_OUT = os.environ.get("SAFETY_GATE_KIND") == "0"
ONLINE = os.environ.get("SAFETY_GATE_KIND_ONLINE") == "1"
KEEP = os.environ.get("SAFETY_GATE_KIND_KEEP") == "1"


def kind_cache() -> Path:
    return Path(os.environ.get("SAFETY_GATE_KIND_CACHE", Path.home() / ".cache" / "safety-gate" / "kind"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not OPTED_OUT:
        return
    skip = pytest.mark.skip(reason="SAFETY_GATE_KIND=0: the kind suite was opted out explicitly")
    for item in items:
        if KIND_DIR in item.path.parents:
            item.add_marker(skip)


# --------------------------------------------------------------------------
# Docker, tools and images


def _run(cmd: list[str], *, log: Path, env: dict[str, str] | None = None, timeout: float = 3600) -> str:
    """Run a build step with its output in ``log``; fail the session with the log's tail."""
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout, cwd=REPO)
    text = log.read_text()
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-40:])
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}); {log} ends with:\n{tail}", pytrace=False)
    return text


def real_docker() -> str:
    """Docker's own client: Debian's /usr/bin/docker first (another `docker` may come earlier on PATH)."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("Docker is required for the kind suite and no docker client was found: install docker.io "
                "(e2e/kind/start-dockerd.sh does), or opt out explicitly with SAFETY_GATE_KIND=0", pytrace=False)


def lacks_cap_sys_resource() -> bool:
    """Whether this host's capability bounding set lacks CAP_SYS_RESOURCE (then --privileged fails)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return not (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1
    return False


@dataclass
class Toolchain:
    env: dict[str, str]      # PATH with kind, kubectl, helm and (where needed) the docker shim
    docker: str
    node_image: str | None   # None: kind's default
    gate_image: str
    store_images: dict[str, str]  # chart value prefix -> image ("postgresql" -> "safety-gate.local/postgresql:15")
    logs: Path


@pytest.fixture(scope="session")
def kind_toolchain(tmp_path_factory: pytest.TempPathFactory) -> Toolchain:
    logs = tmp_path_factory.mktemp("kind-logs")
    docker = real_docker()
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=60)
    if info.returncode != 0:
        pytest.fail(f"Docker cannot run here, so the kind suite cannot: `{docker} info` says: "
                    f"{(info.stderr or info.stdout).strip()}\nStart dockerd (e2e/kind/start-dockerd.sh installs "
                    "and starts it), or opt out explicitly with SAFETY_GATE_KIND=0.", pytrace=False)

    e2e_bin = ensure_binaries()  # kubectl and helm, from e2e/build-binaries.sh's cache
    env = dict(os.environ, SAFETY_GATE_REAL_DOCKER=docker, DOCKER=docker, DOCKER_BUILDKIT="0")
    path = [str(kind_cache() / "bin"), str(e2e_bin), str(Path(docker).parent), env.get("PATH", "")]
    if lacks_cap_sys_resource():
        path.insert(0, str(KIND_DIR / "docker-shim"))
    env["PATH"] = os.pathsep.join(path)

    _run(["bash", str(KIND_DIR / "build-tools.sh"), *(["kind", "promtool"] if ONLINE else [])],
         log=logs / "build-tools.log", env=env)
    if ONLINE:
        gate_image = "safety-gate.local/safety-gate:kind-online"
        _run([docker, "build", "-t", gate_image, str(REPO)], log=logs / "build-gate.log", env=env)
        return Toolchain(env=env, docker=docker, node_image=None, gate_image=gate_image, store_images={},
                         logs=logs)
    out = _run(["bash", str(KIND_DIR / "build-images.sh")], log=logs / "build-images.log", env=env)
    node_image = out.strip().splitlines()[-1]
    return Toolchain(env=env, docker=docker, node_image=node_image, gate_image="safety-gate.local/safety-gate:kind",
                     store_images={"postgresql": "safety-gate.local/postgresql:15", "redis": "safety-gate.local/redis:7.0"},
                     logs=logs)


# --------------------------------------------------------------------------
# the cluster and the release


class KindCluster(ExistingCluster):
    """The kind cluster with the release installed: kubectl, helm and the release's PostgreSQL."""

    def __init__(self, work_dir: Path, *, kubeconfig: Path, toolchain: Toolchain) -> None:
        self.toolchain = toolchain
        os.environ["PATH"] = toolchain.env["PATH"]  # ExistingCluster finds kubectl on PATH
        super().__init__(work_dir, kubeconfig=kubeconfig)

    def run(self, *cmd: str, check: bool = True, timeout: float = 900, input: str | None = None,
            ) -> subprocess.CompletedProcess:
        env = dict(self.toolchain.env, KUBECONFIG=str(self.kubeconfig),
                   HELM_CACHE_HOME=str(self.work_dir / "helm-cache"), HELM_CONFIG_HOME=str(self.work_dir / "helm"))
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env, input=input,
                             cwd=REPO)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def helm(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        return self.run("helm", *args, check=check, timeout=timeout)

    def image_values(self) -> list[str]:
        """The only values the suite sets: where the locally built images are."""
        repo, tag = self.toolchain.gate_image.rsplit(":", 1)
        sets = [f"image.repository={repo}", f"image.tag={tag}", "image.pullPolicy=Never"]
        for prefix, image in self.toolchain.store_images.items():
            repo, tag = image.rsplit(":", 1)
            sets += [f"{prefix}.image.repository={repo}", f"{prefix}.image.tag={tag}",
                     f"{prefix}.image.pullPolicy=Never"]
        return [arg for value in sets for arg in ("--set-string", value)]

    def psql(self, sql: str) -> str:
        """Run SQL in the release's PostgreSQL pod (local socket, as the chart's database owner)."""
        res = self.kubectl("exec", f"statefulset/{POSTGRES}", "-c", "postgresql", "--", "psql", "-v",
                           "ON_ERROR_STOP=1", "-U", "safety_gate", "-d", "safety_gate", "-Atc", sql,
                           namespace=NAMESPACE, check=True)
        return res.stdout.strip()

    def count(self, sql: str) -> int:
        return int(self.psql(sql) or 0)

    def gate_pods(self) -> list[dict]:
        return self.kubectl_json("get", "pods", "-l", "app.kubernetes.io/component=webhook",
                                 namespace=NAMESPACE)["items"]

    def ready_gate_pods(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.gate_pods()
                if p["metadata"].get("deletionTimestamp") is None
                and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]

    def secret_data(self, name: str, namespace: str = NAMESPACE) -> dict[str, bytes]:
        data = self.kubectl_json("get", "secret", name, namespace=namespace)["data"]
        return {key: base64.b64decode(value) for key, value in data.items()}

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        super().create_namespace(name, labels)
        wait_for(lambda: self.kubectl("get", "serviceaccount", "default", namespace=name).returncode == 0,
                 timeout=60, interval=0.5, description=f"the default service account of {name}")
        return name


def _create_cluster(toolchain: Toolchain, work: Path) -> Path:
    kubeconfig = work / "kubeconfig"

    def kind(*args: str, log: str) -> None:
        _run(["kind", *args], log=toolchain.logs / log, env=toolchain.env)

    # Idempotent: a cluster left by an interrupted run is deleted first.
    kind("delete", "cluster", "--name", CLUSTER_NAME, log="kind-delete-leftover.log")
    kind("create", "cluster", "--name", CLUSTER_NAME, "--config", str(KIND_DIR / "kind-config.yaml"),
         "--kubeconfig", str(kubeconfig), "--wait", "300s",
         *(["--image", toolchain.node_image] if toolchain.node_image else []), log="kind-create.log")
    for image in (toolchain.gate_image, *toolchain.store_images.values()):
        kind("load", "docker-image", image, "--name", CLUSTER_NAME, log=f"kind-load-{image.split('/')[-1]}.log")
    return kubeconfig


def _static_volumes(cluster: KindCluster) -> None:
    """hostPath PersistentVolumes for the offline node image, which has no dynamic provisioner."""
    node = f"{CLUSTER_NAME}-control-plane"
    volumes = []
    for index in range(3):
        path = f"/var/local/safety-gate-pv/{index}"
        subprocess.run([cluster.toolchain.docker, "exec", node, "mkdir", "-p", "-m", "0777", path], check=True,
                       timeout=60)
        volumes.append({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"kind-hostpath-{index}"},
            "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard",
                     "hostPath": {"path": path, "type": "Directory"}},
        })
    cluster.apply(volumes)


def _wait_until_gating(cluster: KindCluster) -> None:
    """Until the API server really calls the gate's pods: a probe scale shows up in their decisions."""
    cluster.create_namespace(PROBE_NAMESPACE)
    cluster.apply(workload("probe", PROBE_NAMESPACE, replicas=1))
    replicas = iter(range(2, 10_000))

    def decided() -> bool:
        cluster.kubectl("scale", "deployment/probe", f"--replicas={next(replicas) % 2 + 1}",
                        namespace=PROBE_NAMESPACE)
        return cluster.count(f"SELECT count(*) FROM admission_decisions WHERE namespace = '{PROBE_NAMESPACE}'") > 0

    wait_for(decided, timeout=180, interval=1, description="the API server calling the gate's pods")


_LIVE: list[KindCluster] = []


def _tear_down() -> None:
    """Diagnostics, then the cluster goes (unless SAFETY_GATE_KIND_KEEP=1). Idempotent."""
    while _LIVE:
        cluster = _LIVE.pop()
        _collect_diagnostics(cluster)
        if not KEEP:
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER_NAME], env=cluster.toolchain.env,
                           capture_output=True, timeout=300)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # The rest of the session (the local e2e suite) should not share two cores with an idle
    # kind node: the cluster goes right after the last kind test instead of at session end.
    if KIND_DIR in item.path.parents and (nextitem is None or KIND_DIR not in nextitem.path.parents):
        _tear_down()


@pytest.fixture(scope="session")
def kind_cluster(kind_toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("kind")
    kubeconfig = _create_cluster(kind_toolchain, work)
    cluster = KindCluster(work, kubeconfig=kubeconfig, toolchain=kind_toolchain).start()
    _LIVE.append(cluster)
    try:
        if kind_toolchain.node_image:
            _static_volumes(cluster)
        install = cluster.helm("install", RELEASE, "charts/safety-gate", "-n", NAMESPACE, "--create-namespace",
                               "--wait", "--timeout", "10m", *cluster.image_values())
        cluster.install_notes = install.stdout
        _wait_until_gating(cluster)
        yield cluster
    finally:
        _tear_down()


def _collect_diagnostics(cluster: KindCluster) -> None:
    """Leave what explains a failure next to the logs (pods, events, the gate's logs)."""
    out = cluster.toolchain.logs
    for name, args in {
        "pods.txt": ("get", "pods", "-A", "-o", "wide"),
        "events.txt": ("get", "events", "-A", "--sort-by=.lastTimestamp"),
        "gate.log": ("logs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=webhook", "--tail=-1",
                     "--prefix", "--all-containers"),
    }.items():
        res = cluster.kubectl(*args, timeout=120)
        (out / name).write_text(res.stdout + res.stderr)


@pytest.fixture
def namespace(kind_cluster: KindCluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    return kind_cluster.create_namespace(f"{base[:50].rstrip('-')}-{uuid.uuid4().hex[:6]}")


# --------------------------------------------------------------------------
# objects the tests create


def workload(name: str, namespace: str, *, replicas: int = 1, schedulable: bool = True) -> dict:
    """A Deployment of the node's pause image. ``schedulable=False``: its pods stay Pending (a
    Deployment scaled many times then costs the single node nothing)."""
    selector = {"app": name}
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10.2",
                                            "imagePullPolicy": "IfNotPresent",
                                            "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}}}],
                            "terminationGracePeriodSeconds": 0}
    if not schedulable:
        spec["nodeSelector"] = {"safety-gate.e2e/nowhere": "true"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": selector},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": selector}, "spec": spec}}}


def agent_of(cluster: KindCluster, namespace: str, name: str = "agent") -> str:
    """An automation actor: service account ``name`` of ``namespace`` with RBAC to remediate there."""
    from cluster import grant_remediation_rights, service_account

    cluster.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}})
    agent = service_account(namespace, name)
    grant_remediation_rights(cluster, namespace, subjects=[agent])
    return agent


def scale(cluster: KindCluster, namespace: str, name: str, replicas: int, *, as_user: str | None = None):
    return cluster.kubectl("scale", f"deployment/{name}", f"--replicas={replicas}", namespace=namespace,
                           as_user=as_user)


def oscillation_alert(cluster: KindCluster, namespace: str, name: str) -> dict | None:
    items = cluster.kubectl_json("get", "oa", namespace=namespace)["items"]
    return next((item for item in items if item["metadata"]["name"] == name), None)


def wait_alert(cluster: KindCluster, namespace: str, name: str, predicate, description: str,
               timeout: float = 60) -> dict:
    def ready():
        alert = oscillation_alert(cluster, namespace, name)
        return alert if alert is not None and predicate(alert) else None
    return wait_for(ready, timeout=timeout, interval=0.5, description=description)


def decisions(cluster: KindCluster, namespace: str) -> list[dict]:
    rows = cluster.psql("SELECT coalesce(json_agg(d ORDER BY decided_at), '[]') FROM "
                        f"(SELECT outcome, allowed, actor, pattern, decided_at FROM admission_decisions WHERE namespace = '{namespace}') d")
    return json.loads(rows)
