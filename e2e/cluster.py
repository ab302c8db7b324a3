"""A real Kubernetes control plane (etcd + kube-apiserver, optionally kube-controller-manager) as local processes.

The end-to-end suite talks to a real API server so that admission, RBAC,
impersonation, CRD validation and webhook dispatch are Kubernetes' own code,
not a model of it. With ``controllers=...`` a real kube-controller-manager runs
those controllers (the suite runs the HPA, Deployment and ReplicaSet ones, so the
HPA that fights an agent is Kubernetes' own). There is no scheduler or kubelet:
pods are created but never run, so no metrics exist and the HPA can only clamp
replicas to its bounds; a namespace never finishes terminating.

Binaries come from ``e2e/build-binaries.sh`` (cached in
``$SAFETY_GATE_E2E_BIN``, default ``~/.cache/safety-gate/bin``).

Typical use::

    with ControlPlane(work_dir) as cp:
        cp.install_crds(project_crd_files() + [TEKTON_CRD])
        cp.kubectl("create", "namespace", "shop", check=True)
        register_webhook(cp, "https://127.0.0.1:8443/validate", ca_pem, "safety-gate")
"""

from __future__ import annotations

import atexit
import copy
import datetime as _dt
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent
CHART_DIR = REPO_ROOT / "charts" / "safety-gate"
CHART_CRD_DIR = CHART_DIR / "crds"
WEBHOOK_TEMPLATE = "templates/validatingwebhookconfiguration.yaml"
TEKTON_CRD = E2E_DIR / "manifests" / "tekton-pipelinerun-crd.yaml"
KUBERNAUT_CRDS = E2E_DIR / "manifests" / "kubernaut-crds.yaml"  # WorkflowExecution, RemediationRequest, ...
APPROVAL_POLICY_TEMPLATE = "templates/approval-policy.yaml"
BUILD_SCRIPT = E2E_DIR / "build-binaries.sh"
# The namespace and release of the gate the local suite runs: excluded by the webhook's namespaceSelector,
# like a release namespace, with its own ValidatingWebhookConfiguration beside the harness tests'.
GATE_NAMESPACE = "safety-gate-e2e"
GATE_RELEASE = "safety-gate-e2e"
TOOLS_GO_MOD = E2E_DIR / "tools" / "go.mod"

HELM_VERSION = os.environ.get("HELM_VERSION", "v3.19.0")
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")

WEBHOOK_NAME = "validate.safety-gate.ai.prometheus-alerts-slm.io"
OPT_OUT_LABEL = "ai.prometheus-alerts-slm.io/safety-gate"

T = TypeVar("T")

CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
# What the suite's control plane runs: the HPA (clamping to its bounds: no metrics-server), and the
# Deployment and ReplicaSet controllers so Deployments behave as in a cluster (revisions, ReplicaSets),
# and the PersistentVolume binder, which binds claims to volumes: only a bound claim can be expanded.
SUITE_CONTROLLERS = ("horizontal-pod-autoscaler-controller", "deployment-controller", "replicaset-controller",
                     "persistentvolume-binder-controller")


# --------------------------------------------------------------------------
# small utilities


def default_bin_dir() -> Path:
    """``$SAFETY_GATE_E2E_BIN`` or ``~/.cache/safety-gate/bin``."""
    env = os.environ.get("SAFETY_GATE_E2E_BIN")
    return Path(env) if env else Path.home() / ".cache" / "safety-gate" / "bin"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    description: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that.

    Exceptions raised by the predicate count as "not yet". On timeout a
    ``TimeoutError`` names ``description`` and the last result or exception.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = predicate()
            if result:
                return result
            last = result
        except Exception as exc:  # noqa: BLE001 - polled, reported on timeout
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {description}; last: {last!r}")
        time.sleep(interval)


def pinned_versions() -> dict[str, str]:
    """Binary name -> version pinned by this checkout (e2e/tools/go.mod, HELM_VERSION)."""
    text = TOOLS_GO_MOD.read_text()

    def req(mod: str) -> str:
        m = re.search(rf"^\s*{re.escape(mod)}\s+(v\S+)", text, re.M)
        if not m:
            raise RuntimeError(f"{mod} is not required by {TOOLS_GO_MOD}")
        return m.group(1)

    k8s = req("k8s.io/kubernetes")
    return {"etcd": req("go.etcd.io/etcd/server/v3"), "kube-apiserver": k8s, "kube-controller-manager": k8s,
            "kubectl": k8s, "helm": HELM_VERSION}


def binaries_up_to_date(bin_dir: Path | None = None) -> bool:
    """True when every required binary exists with the pinned version (per ``VERSIONS``)."""
    bin_dir = bin_dir or default_bin_dir()
    stamp = bin_dir / "VERSIONS"
    if not stamp.is_file():
        return False
    recorded = {}
    for line in stamp.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            recorded[parts[0]] = parts[1]
    for name, version in pinned_versions().items():
        if not os.access(bin_dir / name, os.X_OK) or recorded.get(name) != version:
            return False
    return True


def ensure_binaries(bin_dir: Path | None = None) -> Path:
    """Run ``e2e/build-binaries.sh`` unless the cache is already up to date."""
    bin_dir = bin_dir or default_bin_dir()
    if not binaries_up_to_date(bin_dir):
        env = dict(os.environ, SAFETY_GATE_E2E_BIN=str(bin_dir))
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, env=env)
        if not binaries_up_to_date(bin_dir):
            raise RuntimeError(f"{BUILD_SCRIPT} ran but {bin_dir} is still incomplete")
    return bin_dir


def load_yaml_documents(path: Path | str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --------------------------------------------------------------------------
# certificates


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """A throwaway CA (ECDSA P-256) that issues serving and client certificates."""

    def __init__(self, common_name: str = "safety-gate-e2e-ca", *, days: int = 7):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        server: bool = False,
        client: bool = False,
        days: int = 7,
    ) -> tuple[bytes, bytes]:
        """Return ``(cert_pem, key_pem)`` of a leaf certificate signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_encipherment=False, key_cert_sign=False, crl_sign=False,
                    content_commitment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def issue_localhost_server(self, common_name: str = "localhost") -> tuple[bytes, bytes]:
        """Serving certificate for 127.0.0.1, ::1 and localhost."""
        return self.issue(
            common_name, dns_names=["localhost"], ip_addresses=["127.0.0.1", "::1"], server=True
        )


def write_pem(path: Path, data: bytes, *, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


# --------------------------------------------------------------------------
# the control plane


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"kubectl {' '.join(self.cmd[1:])!s} exited {self.returncode}: {(self.stderr or '').strip()}"


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


_live: weakref.WeakSet[ControlPlane] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - safety net for crashed sessions
    for cp in list(_live):
        cp.stop()


class ControlPlane:
    """etcd + kube-apiserver on 127.0.0.1 with client-certificate auth and RBAC.

    Attributes after :meth:`start`: ``server`` (``https://127.0.0.1:PORT``),
    ``kubeconfig`` (admin, ``O=system:masters``), ``ca_file``, ``ca_pem``,
    ``etcd_url``, ``work_dir`` (certificates, data, ``*.log``).

    ``controllers`` (e.g. :data:`SUITE_CONTROLLERS`) also starts kube-controller-manager
    with only those controllers, as ``system:kube-controller-manager`` (client certificate).
    With ``use_service_account_credentials`` (the default, like kubeadm) each controller
    writes as its own service account (the HPA as
    ``system:serviceaccount:kube-system:horizontal-pod-autoscaler``); without it every
    controller writes as ``system:kube-controller-manager``.
    """

    ADMIN_USER = "e2e-admin"
    SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
    SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

    def __init__(
        self,
        work_dir: Path | str,
        *,
        bin_dir: Path | str | None = None,
        extra_apiserver_args: Sequence[str] = (),
        controllers: Sequence[str] = (),
        use_service_account_credentials: bool = True,
        hpa_sync_period: str = "1s",
        start_timeout: float = 120.0,
    ):
        self.work_dir = Path(work_dir)
        self.bin_dir = Path(bin_dir) if bin_dir else default_bin_dir()
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.controllers = tuple(controllers)
        self.use_service_account_credentials = use_service_account_credentials
        self.hpa_sync_period = hpa_sync_period
        self.start_timeout = start_timeout
        self.etcd: _Proc | None = None
        self.apiserver: _Proc | None = None
        self.controller_manager: _Proc | None = None
        self.server = ""
        self.etcd_url = ""
        self.kubeconfig = self.work_dir / "kubeconfig"
        self.pki_dir = self.work_dir / "pki"
        self.ca_file = self.pki_dir / "ca.crt"
        self.ca_pem = b""
        self._admin_cert = self.pki_dir / "admin.crt"
        self._admin_key = self.pki_dir / "admin.key"
        self._ssl: ssl.SSLContext | None = None
        # The API server's admission kubeconfig presents a client certificate (of a CA of its own,
        # not the cluster's, which also signs users) to a webhook at 127.0.0.1:admission_port:
        # where a test runs a gate that requires it (``--validate-client-ca admission_client_ca``).
        self.admission_port = free_port()
        self.admission_client_ca = self.pki_dir / "admission-client-ca.crt"
        self.admission_config = self.work_dir / "admission-configuration.yaml"

    # -- binaries ---------------------------------------------------------

    def binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(f"{path} is missing; run {BUILD_SCRIPT}")
        return str(path)

    # -- lifecycle --------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        self._write_admission_config()
        _live.add(self)
        try:
            self._start_with_retries(self._start_etcd, "etcd")
            self._start_with_retries(self._start_apiserver, "kube-apiserver")
            self._write_kubeconfig()
            if self.controllers:
                self.start_controller_manager()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_with_retries(self, fn: Callable[[], None], what: str, attempts: int = 3) -> None:
        # Free ports are picked, closed and handed to the process: another
        # process may grab one in between. Retry on a fresh port in that case.
        for attempt in range(1, attempts + 1):
            try:
                fn()
                return
            except ControlPlaneError as exc:
                if attempt == attempts or "address already in use" not in str(exc):
                    raise

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        log_path = self.work_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life; closed in stop
        try:
            popen = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            log.close()
        return _Proc(name, popen, log_path)

    def _await(self, proc: _Proc, ready: Callable[[], bool], timeout: float) -> None:
        def check() -> bool:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.popen.returncode}; log {proc.log_path}:\n{proc.log_tail()}"
                )
            return ready()

        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except ControlPlaneError:
                raise
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() >= deadline:
                tail = proc.log_tail()
                self._terminate(proc)
                raise ControlPlaneError(f"{proc.name} not ready after {timeout}s; log {proc.log_path}:\n{tail}")
            time.sleep(0.1)

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        data = self.work_dir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        self.etcd_url = f"http://127.0.0.1:{client}"
        proc = self._spawn(
            "etcd",
            [
                self.binary("etcd"),
                "--name=e2e",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",  # throwaway data: durability buys nothing here
                "--log-level=warn",
            ],
        )
        self.etcd = proc

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as r:
                return json.load(r).get("health") == "true"

        self._await(proc, healthy, self.start_timeout)

    def _start_apiserver(self) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        p = self.pki_dir
        args = [
            self.binary("kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={p / 'generated'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            f"--admission-control-config-file={self.admission_config}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={self.SA_ISSUER}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={self.SERVICE_CLUSTER_IP_RANGE}",
            # No controller-manager creates the "default" service accounts.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_args,
        ]
        self.apiserver = self._spawn("kube-apiserver", args)
        self._ssl = None
        self._await(self.apiserver, lambda: self.api_get("/readyz")[0] == 200, self.start_timeout)

    def start_controller_manager(
        self, *, controllers: Sequence[str] | None = None, use_service_account_credentials: bool | None = None,
    ) -> None:
        """(Re)start kube-controller-manager with ``controllers`` (default: the constructor's).

        No leader election (one instance), the HPA synced every ``hpa_sync_period`` (default
        15s in a real cluster; 1s here so clamps show up within a test's deadline). Ready when
        its ``/healthz`` answers 200 and, with per-controller credentials, when the HPA's
        service account exists (the controller creates it before its first write).
        """
        self.stop_controller_manager()
        if controllers is not None:
            self.controllers = tuple(controllers)
        if use_service_account_credentials is not None:
            self.use_service_account_credentials = use_service_account_credentials
        if not self.controllers:
            raise ControlPlaneError("start_controller_manager needs at least one controller")
        self._start_with_retries(self._start_controller_manager, "kube-controller-manager")

    def _start_controller_manager(self) -> None:
        if not self.use_service_account_credentials:
            self._grant_controller_roles_to_the_controller_manager()
        port = free_port()
        kubeconfig = self._write_component_kubeconfig(
            "kube-controller-manager", user=CONTROLLER_MANAGER_USER, groups=())
        args = [
            self.binary("kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            # Delegated authn/authz of its own /healthz etc., through the same identity.
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            # No front proxy here: without this it polls for a request-header CA that never comes.
            "--authentication-skip-lookup=true",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.pki_dir / 'kcm-generated'}",
            f"--controllers={','.join(self.controllers)}",
            f"--use-service-account-credentials={str(self.use_service_account_credentials).lower()}",
            "--leader-elect=false",
            f"--horizontal-pod-autoscaler-sync-period={self.hpa_sync_period}",
            f"--root-ca-file={self.ca_file}",
            "--profiling=false",
            "--v=1",
        ]
        self.controller_manager = proc = self._spawn("kube-controller-manager", args)
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate, on loopback

        def ready() -> bool:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=insecure, timeout=2) as r:
                if r.status != 200:
                    return False
            if not self.use_service_account_credentials:
                return True
            status, _ = self.api_get("/api/v1/namespaces/kube-system/serviceaccounts/horizontal-pod-autoscaler")
            return status == 200 or "horizontal-pod-autoscaler-controller" not in self.controllers

        self._await(proc, ready, self.start_timeout)

    def _grant_controller_roles_to_the_controller_manager(self) -> None:
        """Without per-controller credentials every controller writes as the controller-manager's own
        user, whose bootstrap role lacks what the controllers do (the scale subresource, ...): clusters
        run that way bind the controllers' roles to it, as this does."""
        short = {"horizontal-pod-autoscaler-controller": "horizontal-pod-autoscaler",
                 "persistentvolume-binder-controller": "persistent-volume-binder"}
        self.apply([
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": f"e2e:kube-controller-manager:{role}"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": f"system:controller:{role}"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                           "name": CONTROLLER_MANAGER_USER}]}
            for role in (short.get(c, c) for c in self.controllers)
        ])

    def stop_controller_manager(self, timeout: float = 15.0) -> None:
        if self.controller_manager is not None:
            self._terminate(self.controller_manager, timeout)
            self.controller_manager = None

    def controller_manager_log(self) -> str:
        assert self.controller_manager is not None
        return self.controller_manager.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate kube-controller-manager, kube-apiserver, then etcd (SIGTERM, then SIGKILL after ``timeout``)."""
        for proc in (self.controller_manager, self.apiserver, self.etcd):
            if proc is not None:
                self._terminate(proc, timeout)
        _live.discard(self)

    @staticmethod
    def _terminate(proc: _Proc, timeout: float = 15.0) -> None:
        if proc.popen.poll() is not None:
            return
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout)

    @property
    def running(self) -> bool:
        return all(p is not None and p.popen.poll() is None for p in (self.etcd, self.apiserver))

    def apiserver_log(self) -> str:
        """What kube-apiserver has logged so far (e.g. ``Failed calling webhook, failing open ...``)."""
        assert self.apiserver is not None
        return self.apiserver.log_path.read_text(errors="replace")

    # -- pki / kubeconfig -------------------------------------------------

    def _write_pki(self) -> None:
        p = self.pki_dir
        p.mkdir(parents=True, exist_ok=True)
        self.ca = CertificateAuthority("safety-gate-e2e-cluster-ca")
        self.ca_pem = self.ca.cert_pem
        write_pem(self.ca_file, self.ca_pem)
        write_pem(p / "ca.key", self.ca.key_pem, private=True)
        cert, key = self.ca.issue(
            "kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"],
            ip_addresses=["127.0.0.1", "10.96.0.1"],
            server=True,
        )
        write_pem(p / "apiserver.crt", cert)
        write_pem(p / "apiserver.key", key, private=True)
        cert, key = self.ca.issue(self.ADMIN_USER, organizations=["system:masters"], client=True)
        write_pem(self._admin_cert, cert)
        write_pem(self._admin_key, key, private=True)
        sa = ec.generate_private_key(ec.SECP256R1())
        write_pem(p / "sa.key", _key_pem(sa), private=True)
        write_pem(
            p / "sa.pub",
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def _write_admission_config(self) -> None:
        """AdmissionConfiguration whose webhook kubeconfig authenticates the API server, with a
        client certificate, to the webhook at ``127.0.0.1:admission_port`` (and no other)."""
        p = self.pki_dir
        client_ca = CertificateAuthority("safety-gate-e2e-admission-client-ca")
        write_pem(self.admission_client_ca, client_ca.cert_pem)
        cert, key = client_ca.issue("kube-apiserver-admission-client", client=True)
        write_pem(p / "admission-client.crt", cert)
        write_pem(p / "admission-client.key", key, private=True)
        webhook_kubeconfig = self.work_dir / "admission-webhooks.kubeconfig"
        webhook_kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "users": [{"name": f"127.0.0.1:{self.admission_port}",
                       "user": {"client-certificate": str(p / "admission-client.crt"),
                                "client-key": str(p / "admission-client.key")}}],
        }, sort_keys=False))
        webhook_kubeconfig.chmod(0o600)
        plugin = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "WebhookAdmissionConfiguration",
                  "kubeConfigFile": str(webhook_kubeconfig)}
        self.admission_config.write_text(yaml.safe_dump({
            "apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
            "plugins": [{"name": "ValidatingAdmissionWebhook", "configuration": plugin},
                        {"name": "MutatingAdmissionWebhook", "configuration": plugin}],
        }, sort_keys=False))

    def _write_kubeconfig(self) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": self.server,
                                                    "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": self.ADMIN_USER, "user": {"client-certificate": str(self._admin_cert),
                                                         "client-key": str(self._admin_key)}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": self.ADMIN_USER}}],
            "current-context": "e2e",
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _write_component_kubeconfig(self, name: str, *, user: str, groups: Sequence[str]) -> Path:
        """A kubeconfig that authenticates as ``user`` with a client certificate of this CA."""
        cert, key = self.client_credentials(user, groups)
        path = self.work_dir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {"server": self.server,
                                                    "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
            "current-context": "e2e",
        }, sort_keys=False))
        path.chmod(0o600)
        return path

    def client_credentials(self, user: str, groups: Sequence[str] = ()) -> tuple[Path, Path]:
        """Issue a client certificate for ``user``/``groups``; return ``(cert, key)`` paths."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", user)
        cert, key = self.ca.issue(user, organizations=list(groups), client=True)
        return (write_pem(self.pki_dir / f"user-{safe}.crt", cert),
                write_pem(self.pki_dir / f"user-{safe}.key", key, private=True))

    # -- raw API access ---------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """Client TLS context trusting the cluster CA and presenting the admin certificate."""
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            ctx.load_cert_chain(str(self._admin_cert), str(self._admin_key))
            self._ssl = ctx
        return self._ssl

    def api_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET ``path`` on the API server as admin; return ``(status, body)``."""
        req = urllib.request.Request(self.server + path, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    # -- kubectl ----------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        as_user: str | None = None,
        as_groups: Iterable[str] = (),
        namespace: str | None = None,
        input: str | bytes | None = None,
        check: bool = False,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster; returns the CompletedProcess (text mode).

        ``as_user``/``as_groups`` impersonate (``--as``/``--as-group``), e.g.
        ``as_user=service_account("shop", "agent")``. With ``check=True`` a
        non-zero exit raises :class:`KubectlError` carrying stderr.
        """
        cmd = [self.binary("kubectl"), f"--kubeconfig={self.kubeconfig}",
               f"--cache-dir={self.work_dir / 'kubectl-cache'}"]
        if as_user:
            cmd.append(f"--as={as_user}")
        cmd += [f"--as-group={g}" for g in as_groups]
        if namespace:
            cmd.append(f"--namespace={namespace}")
        cmd += list(args)
        if isinstance(input, bytes):
            input = input.decode()
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise KubectlError(res.returncode, cmd, res.stdout, res.stderr)
        return res

    def kubectl_json(self, *args: str, **kw: Any) -> Any:
        """``kubectl ... -o json`` parsed (raises on failure)."""
        kw["check"] = True
        return json.loads(self.kubectl(*args, "-o", "json", **kw).stdout)

    @property
    def settles_deployments(self) -> bool:
        """Whether a Deployment controller runs here, whose first writes :meth:`apply` waits out."""
        return "deployment-controller" in self.controllers

    def apply(self, manifest: str | dict | list[dict], **kw: Any) -> subprocess.CompletedProcess:
        """Server-side apply a YAML string, an object, or a list of objects.

        With a Deployment controller running, it then waits until each applied Deployment is
        observed (:func:`wait_observed`): a test's next write would otherwise race the controllers'
        status writes, and a write the API server retries on that conflict is admitted twice.
        """
        docs = manifest if isinstance(manifest, list) else [manifest] if isinstance(manifest, dict) else None
        if docs is None:
            docs = [d for d in yaml.safe_load_all(manifest) if d]
        kw.setdefault("check", True)
        res = self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=safety-gate-e2e",
                           "-f", "-", input=yaml.safe_dump_all(docs, sort_keys=False), **kw)
        if res.returncode == 0 and self.settles_deployments:
            for doc in docs:
                meta = doc.get("metadata") or {}
                if doc.get("kind") == "Deployment" and meta.get("namespace") and meta.get("name"):
                    wait_observed(self, meta["name"], meta["namespace"])
        return res

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        self.apply({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": dict(labels or {})}})
        return name

    # -- CRDs -------------------------------------------------------------

    def install_crds(self, files: Iterable[Path | str], timeout: float = 60.0) -> list[str]:
        """Apply CRD manifests, wait until Established and served by discovery.

        Returns the CRD names installed.
        """
        docs: list[dict] = []
        for f in files:
            docs += load_yaml_documents(f)
        crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
        if not crds:
            return []
        self.apply(docs)
        for crd in crds:
            self.wait_crd_ready(crd, timeout=timeout)
        return [c["metadata"]["name"] for c in crds]

    def wait_crd_ready(self, crd: dict, timeout: float = 60.0) -> None:
        name = crd["metadata"]["name"]
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]

        def established() -> bool:
            got = self.kubectl_json("get", "crd", name)
            conds = {c["type"]: c["status"] for c in got.get("status", {}).get("conditions", [])}
            return conds.get("Established") == "True" and conds.get("NamesAccepted") == "True"

        wait_for(established, timeout=timeout, description=f"CRD {name} Established")
        for v in crd["spec"]["versions"]:
            if not v.get("served", True):
                continue

            def discovered(version: str = v["name"]) -> bool:
                status, body = self.api_get(f"/apis/{group}/{version}")
                return status == 200 and any(r["name"] == plural for r in json.loads(body)["resources"])

            wait_for(discovered, timeout=timeout, description=f"{plural}.{group}/{v['name']} in discovery")


def service_account(namespace: str, name: str) -> str:
    """The user name of a service account, for ``kubectl(as_user=...)``."""
    return f"system:serviceaccount:{namespace}:{name}"


# --------------------------------------------------------------------------
# CRDs and the webhook registration of the chart


def project_crd_files(crd_dir: Path | str | None = None) -> list[Path]:
    """The chart's CRD manifests (``charts/safety-gate/crds/*.yaml``), sorted.

    ``$SAFETY_GATE_E2E_CRD_DIR`` overrides the directory.
    """
    d = Path(crd_dir or os.environ.get("SAFETY_GATE_E2E_CRD_DIR") or CHART_CRD_DIR)
    return sorted([*d.glob("*.yaml"), *d.glob("*.yml")]) if d.is_dir() else []


# What the chart renders, used only while charts/safety-gate does not exist yet.
def builtin_webhook_configuration(namespace_of_gate: str, name: str = "safety-gate") -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "safety-gate"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"name": name, "namespace": namespace_of_gate,
                                             "path": "/validate", "port": 443}},
                "rules": [
                    {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                     "resources": ["deployments", "deployments/scale", "statefulsets", "statefulsets/scale"],
                     "scope": "Namespaced"},
                    {"apiGroups": ["tekton.dev"], "apiVersions": ["v1", "v1beta1"], "operations": ["CREATE"],
                     "resources": ["pipelineruns"], "scope": "Namespaced"},
                ],
                "namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                     "values": ["kube-system", namespace_of_gate]},
                    {"key": OPT_OUT_LABEL, "operator": "NotIn", "values": ["disabled"]},
                ]},
                "failurePolicy": "Ignore",
                "matchPolicy": "Equivalent",
                "sideEffects": "NoneOnDryRun",
                "timeoutSeconds": 3,
            }
        ],
    }


def render_webhook_configuration(
    namespace_of_gate: str,
    *,
    helm: Path | str | None = None,
    release: str = "safety-gate",
    chart_dir: Path | str = CHART_DIR,
    helm_args: Sequence[str] = (),
) -> tuple[dict, str]:
    """The chart's ValidatingWebhookConfiguration as a dict, and its source.

    Renders ``helm template RELEASE charts/safety-gate --namespace NS
    --show-only templates/validatingwebhookconfiguration.yaml``; the source is
    ``"chart"``. Only when that template does not exist yet does it fall back to
    :func:`builtin_webhook_configuration` (source ``"builtin"``). A chart that
    exists but fails to render is an error, never a silent fallback.
    """
    chart_dir = Path(chart_dir)
    if not (chart_dir / WEBHOOK_TEMPLATE).is_file():
        return builtin_webhook_configuration(namespace_of_gate, name=release), "builtin"
    helm = str(helm or default_bin_dir() / "helm")
    res = subprocess.run(
        [helm, "template", release, str(chart_dir), "--namespace", namespace_of_gate,
         "--kube-version", pinned_versions()["kube-apiserver"],
         "--show-only", WEBHOOK_TEMPLATE, *helm_args],
        capture_output=True, text=True, timeout=60,
    )
    if res.returncode != 0:
        raise RuntimeError(f"helm template failed ({res.returncode}): {res.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    vwcs = [d for d in docs if d.get("kind") == "ValidatingWebhookConfiguration"]
    if len(vwcs) != 1:
        raise RuntimeError(f"expected one ValidatingWebhookConfiguration from the chart, got {len(vwcs)}")
    return vwcs[0], "chart"


def install_approval_policy(cluster: ControlPlane, *, release: str = "safety-gate",
                            namespace_of_gate: str = "safety-gate", helm: Path | str | None = None) -> list[str]:
    """Apply the chart's approval ValidatingAdmissionPolicy and its binding; return their names.

    The API server then refuses any OscillationAlert approval whose ``approvedBy`` is not the
    requesting user. It loads policies asynchronously: callers poll for the effect.
    """
    helm = str(helm or default_bin_dir() / "helm")
    res = subprocess.run(
        [helm, "template", release, str(CHART_DIR), "--namespace", namespace_of_gate,
         "--kube-version", pinned_versions()["kube-apiserver"], "--show-only", APPROVAL_POLICY_TEMPLATE],
        capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"helm template failed ({res.returncode}): {res.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    cluster.apply(docs)
    return [d["metadata"]["name"] for d in docs]


@dataclass
class WebhookRegistration:
    name: str
    url: str
    source: str  # "chart" or "builtin"
    document: dict = field(repr=False)

    def unregister(self, cluster: ControlPlane) -> None:
        cluster.kubectl("delete", "validatingwebhookconfiguration", self.name, "--ignore-not-found",
                        check=True)


def register_webhook(
    cluster: ControlPlane,
    url: str,
    ca_bundle_pem: bytes | str,
    namespace_of_gate: str,
    **render_kw: Any,
) -> WebhookRegistration:
    """Register the chart's webhook configuration, pointed at ``url``.

    The rules, namespaceSelector, failurePolicy, timeouts, sideEffects and
    matchPolicy are exactly what the chart renders for a release in
    ``namespace_of_gate``; only ``clientConfig`` changes: the in-cluster
    ``service`` becomes ``url`` (e.g. ``https://127.0.0.1:PORT/validate``)
    and ``caBundle`` becomes ``ca_bundle_pem``. The API server picks the
    configuration up asynchronously: callers poll for its effect.
    """
    import base64

    doc, source = render_webhook_configuration(namespace_of_gate, **render_kw)
    doc = copy.deepcopy(doc)
    pem = ca_bundle_pem.encode() if isinstance(ca_bundle_pem, str) else ca_bundle_pem
    bundle = base64.b64encode(pem).decode()
    meta = doc.setdefault("metadata", {})
    # No cert-manager runs here to inject a CA; drop its hint so nothing fights the bundle.
    annotations = meta.get("annotations") or {}
    annotations.pop("cert-manager.io/inject-ca-from", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    for wh in doc.get("webhooks", []):
        wh["clientConfig"] = {"url": url, "caBundle": bundle}
    cluster.apply(doc)
    return WebhookRegistration(name=meta["name"], url=url, source=source, document=doc)


# --------------------------------------------------------------------------
# objects the gate's end-to-end tests create

HPA_USER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"


def deployment(name: str, namespace: str, replicas: int = 1, labels: dict[str, str] | None = None) -> dict:
    """A Deployment (its pods are created but never run: there is no scheduler or kubelet)."""
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {**selector, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                         "resources": {"requests": {"memory": "64Mi"}}}]},
            },
        },
    }


def horizontal_pod_autoscaler(name: str, namespace: str, *, deployment_name: str, min_replicas: int = 2,
                              max_replicas: int = 10) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


def remediation_pipelinerun(namespace: str, *, target: str, alert: str, action_type: str = "restart_pod") -> dict:
    """A Kubernaut-style PipelineRun: generateName, params ACTION_TYPE / TARGET_RESOURCE / ALERT_NAME."""
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"generateName": "kubernaut-", "namespace": namespace},
        "spec": {
            "pipelineRef": {"name": "kubernaut-action"},
            "params": [{"name": "ACTION_TYPE", "value": action_type},
                       {"name": "TARGET_RESOURCE", "value": target},
                       {"name": "ALERT_NAME", "value": alert}],
        },
    }


def grant_remediation_rights(cluster: ControlPlane, namespace: str, *, subjects: Sequence[str]) -> None:
    """RBAC for an agent (or the HPA): scale/patch/apply workloads and create PipelineRuns in ``namespace``.

    ``subjects`` are user names; service accounts (``system:serviceaccount:NS:NAME``) are bound
    as ServiceAccount subjects, so impersonating them is exactly what a pod with that account gets.
    """
    bound = []
    for subject in subjects:
        parts = subject.split(":")
        if subject.startswith("system:serviceaccount:") and len(parts) == 4:
            bound.append({"kind": "ServiceAccount", "namespace": parts[2], "name": parts[3]})
        else:
            bound.append({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": subject})
    cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "remediation", "namespace": namespace},
         "rules": [
             {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"],
              "verbs": ["get", "list", "watch", "update", "patch"]},
             {"apiGroups": ["apps"], "resources": ["deployments/scale", "statefulsets/scale"],
              "verbs": ["get", "update", "patch"]},
             {"apiGroups": ["tekton.dev"], "resources": ["pipelineruns"], "verbs": ["get", "list", "create"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "remediation", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "remediation"},
         "subjects": bound},
    ])


def wait_observed(cluster: ControlPlane, name: str, namespace: str, kind: str = "deployment",
                  timeout: float = 60) -> None:
    """Wait until the workload's controller has observed its latest generation.

    The Deployment controller writes the status of a new or changed Deployment moments later; a
    ``kubectl scale`` racing that write (or starting from a watch cache that has not seen it yet)
    conflicts, and the API server retries it, admitting it twice (issue 13: the gate must count
    that once). :meth:`ControlPlane.apply` waits so for every
    Deployment it applies.
    """
    plural = {"deployment": "deployments", "statefulset": "statefulsets"}[kind]
    cached_path = f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}?resourceVersion=0"

    def observed() -> bool:
        obj = cluster.kubectl_json("get", kind, name, namespace=namespace)
        status, wanted = obj.get("status") or {}, obj["spec"].get("replicas", 1)
        conditions = {c.get("type") for c in status.get("conditions") or []}
        # Its ReplicaSet has created every pod and said so, and the Deployment's status says that
        # too: after this the controllers have nothing left to write until the next change.
        settled = (status.get("observedGeneration") == obj["metadata"]["generation"]
                   and status.get("replicas", 0) == wanted and status.get("updatedReplicas", 0) == wanted
                   and (kind != "deployment" or {"Available", "Progressing"} <= conditions))
        if not settled:
            return False
        # And the API server's watch cache has caught up: an update starts from the cached object,
        # and one that turns out stale is retried, admission included.
        cached = json.loads(cluster.kubectl("get", "--raw", cached_path, check=True).stdout)
        return cached["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    wait_for(observed, timeout=timeout, interval=0.1, description=f"{kind} {namespace}/{name} observed")


def replicas_of(cluster: ControlPlane, name: str, namespace: str, kind: str = "deployment") -> int:
    return cluster.kubectl_json("get", kind, name, namespace=namespace)["spec"]["replicas"]


def oscillation_alert(cluster: ControlPlane, namespace: str, name: str) -> dict | None:
    """The OscillationAlert ``namespace/name`` as the API server has it, or None."""
    items = cluster.kubectl_json("get", "oa", namespace=namespace)["items"]
    return next((item for item in items if item["metadata"]["name"] == name), None)


# --------------------------------------------------------------------------
# an existing cluster (kind) instead of the local control plane


class ExistingCluster(ControlPlane):
    """A cluster started elsewhere (``e2e/kind/run.sh``), driven with the same methods.

    Nothing is started or stopped; ``kubectl`` is the one on ``PATH`` and the admin is whoever
    ``kubeconfig`` says. Tests that check the local control plane itself do not apply.
    """

    def __init__(self, work_dir: Path | str, *, kubeconfig: Path | str) -> None:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ControlPlaneError("kubectl is not on PATH")
        super().__init__(work_dir, bin_dir=Path(kubectl).parent)
        self.kubeconfig = Path(kubeconfig)

    def start(self) -> ExistingCluster:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.kubectl("version", check=True)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        pass

    @property
    def settles_deployments(self) -> bool:
        return True  # kind runs the Deployment controller

    @property
    def running(self) -> bool:
        return self.kubectl("version").returncode == 0

    def apiserver_log(self) -> str:
        res = self.kubectl("logs", "-n", "kube-system", "-l", "component=kube-apiserver", "--tail=-1",
                           "--prefix", check=True)
        return res.stdout

    def install_crds(self, files: Iterable[Path | str], timeout: float = 60.0) -> list[str]:
        """Apply CRDs the chart did not install (Tekton's) and wait for them with kubectl."""
        docs = [d for f in files for d in load_yaml_documents(f) if d.get("kind") == "CustomResourceDefinition"]
        if docs:
            self.apply(docs)
            for crd in docs:
                self.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}",
                             f"--timeout={int(timeout)}s", check=True, timeout=timeout + 10)
        return [d["metadata"]["name"] for d in docs]


def fresh_pod(cluster: Any, namespace: str, app: str, *, other_than: set[str], timeout: float = 30,
              interval: float = 0.2) -> str:
    """The name of a live pod of ``app`` not seen before (the ReplicaSet's replacement of the last
    one). ``cluster``: this harness's ControlPlane or the kind suite's cluster, both with ``kubectl_json``."""
    def fresh() -> str | None:
        pods = cluster.kubectl_json("get", "pods", "-l", f"app={app}", namespace=namespace)["items"]
        names = [p["metadata"]["name"] for p in pods
                 if not p["metadata"].get("deletionTimestamp") and p["metadata"]["name"] not in other_than]
        return names[0] if names else None
    return wait_for(fresh, timeout=timeout, interval=interval, description=f"a new pod of {app}")
