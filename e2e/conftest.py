"""Fixtures of the end-to-end suite: one real control plane per session.

Environment:
  SAFETY_GATE_E2E_BIN         binary cache (default ~/.cache/safety-gate/bin)
  SAFETY_GATE_E2E_SKIP_BUILD  1: never run build-binaries.sh, fail if binaries are missing
  SAFETY_GATE_E2E_CRD_DIR     CRDs to install instead of charts/safety-gate/crds
  TEST_POSTGRES_DSN / TEST_REDIS_URL  external stores for the gate under test (else embedded)

The gate under test (``gate``, session-scoped) is one ``safety-gate serve`` process with
``--kubeconfig`` of the control plane, its own PostgreSQL database and Redis, registered by
URL with the CA it generated. Tests isolate themselves by namespace: history is per target,
and each test's agent is a service account of its own namespace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

# The suite's helpers live next to this file; make them importable whatever
# pytest import mode the project configures.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # the repository: tests.gateproc, webhook

from cluster import (  # noqa: E402
    GATE_NAMESPACE,
    GATE_RELEASE,
    KUBERNAUT_CRDS,
    SUITE_CONTROLLERS,
    TEKTON_CRD,
    ControlPlane,
    WebhookRegistration,
    binaries_up_to_date,
    default_bin_dir,
    deployment,
    ensure_binaries,
    install_approval_policy,
    project_crd_files,
    register_webhook,
    wait_for,
)


@pytest.fixture(scope="session")
def control_plane_bin_dir() -> Path:
    """The binary cache, built by e2e/build-binaries.sh when missing or stale."""
    bin_dir = default_bin_dir()
    if os.environ.get("SAFETY_GATE_E2E_SKIP_BUILD") == "1":
        if not binaries_up_to_date(bin_dir):
            pytest.fail(f"{bin_dir} lacks the pinned binaries and SAFETY_GATE_E2E_SKIP_BUILD=1")
        return bin_dir
    return ensure_binaries(bin_dir)


# SAFETY_GATE_E2E_TARGET=kind (set by e2e/kind/run.sh): the same tests against an existing
# cluster with the chart installed, instead of local processes. See e2e/kind/README.md.
KIND = os.environ.get("SAFETY_GATE_E2E_TARGET", "local") == "kind"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not KIND:
        return
    harness = pytest.mark.skip(reason="checks the local control plane harness, not the gate")
    local_gate = pytest.mark.skip(reason="talks to the gate process directly; on kind it sits behind its Service")
    for item in items:
        if item.path.name == "test_control_plane.py":
            item.add_marker(harness)
        elif item.get_closest_marker("local_gate"):
            item.add_marker(local_gate)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """A started :class:`ControlPlane` with the chart's CRDs and Tekton's PipelineRun CRD installed,
    and kube-controller-manager running :data:`cluster.SUITE_CONTROLLERS` (the real HPA).

    ``cluster.installed_crds`` lists the CRD names. Logs and certificates are
    under ``cluster.work_dir`` (pytest's basetemp, kept for the last runs).
    """
    if KIND:
        from cluster import ExistingCluster

        existing = ExistingCluster(tmp_path_factory.mktemp("kind"), kubeconfig=os.environ["KUBECONFIG"]).start()
        existing.installed_crds = existing.install_crds([TEKTON_CRD, KUBERNAUT_CRDS])  # the chart installed its own
        yield existing
        return
    control_plane_bin_dir = request.getfixturevalue("control_plane_bin_dir")
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane"), bin_dir=control_plane_bin_dir,
                      controllers=SUITE_CONTROLLERS)
    cp.start()
    try:
        cp.installed_crds = cp.install_crds([TEKTON_CRD, KUBERNAUT_CRDS, *project_crd_files()])
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(cluster: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test. Not deleted: without a
    controller-manager a deleted namespace never finishes terminating."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    name = f"{base[:50].rstrip('-')}-{uuid.uuid4().hex[:6]}"
    return cluster.create_namespace(name)


# --------------------------------------------------------------------------
# the gate under test

PROBE_NAMESPACE = "sg-e2e-probe"


def _run_async(factory: Any) -> Any:
    """Run a coroutine on a private loop in a private thread (independent of any pytest loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


class GateUnderTest:
    """The running gate: its process, its PostgreSQL, and its webhook registration."""

    def __init__(self, *, cluster: ControlPlane, process: Any, dsn: str) -> None:
        self.cluster = cluster
        self.process = process
        self.dsn = dsn
        self.registration: WebhookRegistration | None = None
        self._probe = 1

    # -- process --------------------------------------------------------
    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    @property
    def running(self) -> bool:
        return self.process.process is not None and self.process.process.poll() is None

    def log(self) -> str:
        return self.process.log()

    def ca_bundle(self) -> bytes:
        return self.process.ca_file.read_bytes()

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        """``safety-gate ARGS`` as a person would run it (same Python, same repository)."""
        res = subprocess.run([sys.executable, "-m", "webhook", *args], capture_output=True, text=True, timeout=120,
                             cwd=str(Path(__file__).resolve().parent.parent), env={**os.environ, "COLUMNS": "250"})
        if check and res.returncode != 0:
            raise AssertionError(f"safety-gate {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    # -- webhook --------------------------------------------------------
    def register(self) -> None:
        self.registration = register_webhook(self.cluster, f"{self.process.url}/validate",
                                             self.process.ca_file.read_bytes(), GATE_NAMESPACE, release=GATE_RELEASE)

    def wait_gating(self, timeout: float = 60) -> None:
        """Poll until the API server sends requests to this gate (it loads configurations asynchronously)."""
        def seen() -> bool:
            self._probe += 1
            self.cluster.kubectl("scale", "deployment/probe", f"--replicas={self._probe % 5 + 1}",
                                 namespace=PROBE_NAMESPACE, check=True)
            return self.count("SELECT count(*) FROM admission_decisions WHERE namespace = $1", PROBE_NAMESPACE) > 0
        wait_for(seen, timeout=timeout, interval=0.3, description="the API server to call the gate")

    # -- its PostgreSQL -------------------------------------------------
    def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        import asyncpg

        async def run() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(self.dsn)
            try:
                return [dict(row) for row in await conn.fetch(query, *args)]
            finally:
                await conn.close()

        return _run_async(run)

    def count(self, query: str, *args: Any) -> int:
        rows = self.sql(query, *args)
        return int(next(iter(rows[0].values()))) if rows else 0

    def actions(self, namespace: str) -> int:
        """Admitted actions recorded in the history for targets in ``namespace``."""
        return self.count("SELECT count(*) FROM resource_action_traces WHERE namespace = $1", namespace)

    def decisions(self, namespace: str) -> list[dict[str, Any]]:
        return self.sql("SELECT * FROM admission_decisions WHERE namespace = $1 ORDER BY decided_at", namespace)


@pytest.fixture(scope="session")
def gate_stores():
    """``(postgres_dsn, redis_url)`` for the gate: a new database on the test PostgreSQL, a Redis."""
    from webhook.store.embedded import provide_postgres, provide_redis

    # Outside pytest's basetemp: every pytest session resets that tree to 0700, which locks out
    # the unprivileged PostgreSQL user of an embedded server a concurrent session is running.
    base = Path(tempfile.mkdtemp(prefix="safety-gate-e2e-stores-"))
    dsn = os.environ.get("TEST_POSTGRES_DSN") or None
    url = os.environ.get("TEST_REDIS_URL") or None
    try:
        with provide_postgres(dsn=dsn, data_dir=None if dsn else base / "postgres") as pg, \
                provide_redis(url=url, data_dir=None if url else base / "redis") as redis:
            import asyncpg

            name = f"sg_e2e_{uuid.uuid4().hex[:12]}"

            async def create() -> None:
                conn = await asyncpg.connect(pg.dsn)
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                finally:
                    await conn.close()

            _run_async(create)
            root, _, _ = pg.dsn.rpartition("/")
            yield f"{root}/{name}", redis.url
    finally:
        shutil.rmtree(base, ignore_errors=True)


class ChartGate(GateUnderTest):
    """The gate installed by the chart (kind): stopping it scales its Deployment to zero.

    ``SAFETY_GATE_E2E_POSTGRES_DSN`` reaches the gate's PostgreSQL (run.sh port-forwards it);
    ``SAFETY_GATE_E2E_RELEASE`` / ``SAFETY_GATE_E2E_RELEASE_NAMESPACE`` name the release.
    """

    def __init__(self, *, cluster: ControlPlane, dsn: str, release: str, release_namespace: str) -> None:
        super().__init__(cluster=cluster, process=None, dsn=dsn)
        self.release = release
        self.release_namespace = release_namespace
        self.replicas = int(cluster.kubectl_json("get", "deployment", release,
                                                 namespace=release_namespace)["spec"]["replicas"])

    def start(self) -> None:
        self.cluster.kubectl("scale", f"deployment/{self.release}", f"--replicas={self.replicas}",
                             namespace=self.release_namespace, check=True)
        self.cluster.kubectl("rollout", "status", f"deployment/{self.release}", "--timeout=180s",
                             namespace=self.release_namespace, check=True, timeout=200)

    def stop(self) -> None:
        self.cluster.kubectl("scale", f"deployment/{self.release}", "--replicas=0",
                             namespace=self.release_namespace, check=True)
        wait_for(lambda: not self.cluster.kubectl_json(
            "get", "pods", "-l", f"app.kubernetes.io/instance={self.release}",
            "--field-selector=status.phase=Running", namespace=self.release_namespace)["items"],
            timeout=120, interval=1, description="the gate's pods to stop")

    @property
    def running(self) -> bool:
        return True

    def log(self) -> str:
        return self.cluster.kubectl("logs", f"deployment/{self.release}", "--tail=200",
                                    namespace=self.release_namespace).stdout

    def ca_bundle(self) -> bytes:
        import base64

        config = self.cluster.kubectl_json("get", "validatingwebhookconfigurations", "-l",
                                           f"app.kubernetes.io/instance={self.release}")["items"][0]
        return base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])

    def register(self) -> None:
        pass  # the chart registered it


@pytest.fixture(scope="session")
def gate(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """The gate as the API server's webhook, with ``--kubeconfig`` of the control plane."""
    if KIND:
        chart_gate = ChartGate(cluster=cluster, dsn=os.environ["SAFETY_GATE_E2E_POSTGRES_DSN"],
                               release=os.environ.get("SAFETY_GATE_E2E_RELEASE", "safety-gate"),
                               release_namespace=os.environ.get("SAFETY_GATE_E2E_RELEASE_NAMESPACE", "safety-gate"))
        cluster.create_namespace(PROBE_NAMESPACE)
        cluster.apply(deployment("probe", PROBE_NAMESPACE))
        chart_gate.wait_gating(timeout=120)
        yield chart_gate
        return

    from tests.gateproc import GateProcess

    dsn, redis_url = request.getfixturevalue("gate_stores")
    process = GateProcess(
        data_dir=tmp_path_factory.mktemp("gate"), postgres_dsn=dsn, redis_url=redis_url,
        extra_args=["--kubeconfig", str(cluster.kubeconfig), "--cluster-id", "e2e", "--log-level", "INFO"],
        env={"SAFETY_GATE_ALERT_SWEEP_SECONDS": "1", "SAFETY_GATE_NAMESPACE": GATE_NAMESPACE,
             "SAFETY_GATE_SUMMARY_INTERVAL": "1"},
    )
    under_test = GateUnderTest(cluster=cluster, process=process, dsn=dsn)
    cluster.create_namespace(GATE_NAMESPACE)
    cluster.create_namespace(PROBE_NAMESPACE)
    cluster.apply(deployment("probe", PROBE_NAMESPACE))
    install_approval_policy(cluster, release=GATE_RELEASE, namespace_of_gate=GATE_NAMESPACE)
    under_test.start()
    try:
        under_test.register()
        under_test.wait_gating()
        yield under_test
    finally:
        if under_test.registration is not None:
            under_test.registration.unregister(cluster)
        under_test.stop()
