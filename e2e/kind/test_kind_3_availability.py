"""The release keeps deciding while it changes under load: a gate pod deleted in the middle of a
stream of scale requests, and a CA rotation through the certificate Secret while the pods serve.

The requests are a person's (kind's admin: never refused, always decided and recorded), so the
only way one could go unrecorded is the API server failing open past an unavailable gate
(failurePolicy: Ignore): every request must succeed, kube-apiserver must log no fail-open, and
every admission must be in the history exactly once.
"""

from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
import subprocess
import threading

import pytest
from cluster import wait_for
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from kind_helpers import FULLNAME, NAMESPACE, WEBHOOK, KindCluster, scale, workload

TLS_SECRET = f"{FULLNAME}-tls"

# Waits with generous deadlines (pod replacement, rotation and propagation, one check interval each).
pytestmark = pytest.mark.timeout(1800)


class ScaleStream:
    """Sequential scales (1→2→1→...) of each target, one thread per target: ``per_target`` of them,
    or fewer when :meth:`stop` is called first."""

    def __init__(self, cluster: KindCluster, namespace: str, targets: list[str], *, per_target: int) -> None:
        self.cluster, self.namespace, self.targets, self.per_target = cluster, namespace, targets, per_target
        self.done = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in targets]

    def _run(self, target: str) -> None:
        for step in range(self.per_target):
            if self._stop.is_set():
                return
            res = scale(self.cluster, self.namespace, target, 2 if step % 2 == 0 else 1)
            with self._lock:
                self.done += 1
                if res.returncode != 0:
                    self.failures.append(f"{target} step {step}: {res.stderr.strip()}")

    @property
    def total(self) -> int:
        return self.done

    def stop(self) -> None:
        self._stop.set()

    def start(self) -> ScaleStream:
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        """Wait for the threads (each request has kubectl's own timeout)."""
        for thread in self._threads:
            thread.join(timeout=900)
        assert not any(t.is_alive() for t in self._threads), "the scale stream did not finish"


FAILED_OPEN = "Failed calling webhook, failing open " + WEBHOOK


def failed_open(cluster: KindCluster) -> int:
    """How often kube-apiserver admitted a change past the gate (failurePolicy: Ignore)."""
    return cluster.apiserver_log().count(FAILED_OPEN)


def assert_all_recorded_once(cluster: KindCluster, namespace: str, total: int, *, failed_open_before: int) -> None:
    """Every request went through the gate, and each admission is in the history exactly once.

    One kubectl request may be admitted more than once: kube-apiserver re-runs admission when
    an update found its cached object stale (each run is a new AdmissionReview uid). So the
    history has at least ``total`` rows, each admission uid once, each one an allow decision."""
    history = f"SELECT count(*) FROM resource_action_traces WHERE namespace = '{namespace}'"
    wait_for(lambda: cluster.count(history) >= total, timeout=120, interval=1,
             description=f"{total} history rows")
    assert failed_open(cluster) == failed_open_before, "kube-apiserver failed open past the gate"
    assert cluster.count(f"SELECT count(DISTINCT request_uid) FROM resource_action_traces WHERE namespace = '{namespace}'") \
        == cluster.count(history)
    assert cluster.count(
        "SELECT count(*) FROM resource_action_traces t WHERE namespace = "
        f"'{namespace}' AND NOT EXISTS (SELECT 1 FROM admission_decisions d WHERE d.request_uid = t.request_uid "
        "AND d.allowed)") == 0


def test_deleting_a_gate_pod_under_a_stream_of_scales_fails_and_loses_nothing(kind_cluster: KindCluster,
                                                                              namespace: str):
    targets = ["a", "b"]
    kind_cluster.apply([workload(t, namespace, replicas=1, schedulable=False) for t in targets])
    before = failed_open(kind_cluster)
    stream = ScaleStream(kind_cluster, namespace, targets, per_target=40).start()
    wait_for(lambda: stream.done >= 10, timeout=300, interval=0.2, description="the stream under way")
    victim = kind_cluster.ready_gate_pods()[0]
    kind_cluster.kubectl("delete", "pod", victim, "--wait=false", namespace=NAMESPACE, check=True)
    stream.join()

    assert stream.failures == []
    assert_all_recorded_once(kind_cluster, namespace, stream.total, failed_open_before=before)
    # The Deployment replaced the pod; the PDB kept at least one serving throughout.
    wait_for(lambda: len(kind_cluster.ready_gate_pods()) == 3 and victim not in kind_cluster.ready_gate_pods(),
             timeout=300, interval=1, description="three ready gate pods again")


def _reissued_ca(ca_pem: bytes, key_pem: bytes, *, lifetime: datetime.timedelta) -> bytes:
    """The same CA (subject, key, extensions) with a validity ending soon: what an ageing CA looks
    like. Everything it signed still verifies against it, so serving goes on while the gate
    notices that the CA is due and rotates it."""
    old = x509.load_pem_x509_certificate(ca_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.issuer)
               .public_key(old.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + lifetime))
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    algorithm = None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def _served_certificate(cluster: KindCluster, pod: str) -> x509.Certificate | None:
    """The certificate ``pod`` serves on 8443, through a port-forward."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    forward = subprocess.Popen([cluster.binary("kubectl"), f"--kubeconfig={cluster.kubeconfig}", "-n", NAMESPACE,
                                "port-forward", f"pod/{pod}", f"{port}:8443"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8443" once listening
        if "Forwarding" not in line:
            return None
        pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
        return x509.load_pem_x509_certificate(pem.encode())
    except OSError:
        return None
    finally:
        forward.terminate()
        forward.wait(timeout=30)


def _key(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _bundle(cluster: KindCluster) -> list[x509.Certificate]:
    config = cluster.kubectl_json("get", "validatingwebhookconfiguration", FULLNAME)
    bundles = {w["clientConfig"].get("caBundle", "") for w in config["webhooks"]}
    assert len(bundles) == 1, "every webhook of the configuration carries the same bundle"
    return x509.load_pem_x509_certificates(base64.b64decode(bundles.pop()))


def test_the_ca_rotates_through_the_secret_while_the_pods_serve(kind_cluster: KindCluster, namespace: str):
    before = kind_cluster.secret_data(TLS_SECRET)
    old_ca = x509.load_pem_x509_certificate(before["ca.crt"])
    ageing = _reissued_ca(before["ca.crt"], before["ca.key"], lifetime=datetime.timedelta(minutes=15))
    targets = ["c", "d"]
    kind_cluster.apply([workload(t, namespace, replicas=1, schedulable=False) for t in targets])
    before = failed_open(kind_cluster)
    stream = ScaleStream(kind_cluster, namespace, targets, per_target=1000).start()
    kind_cluster.kubectl("patch", "secret", TLS_SECRET, "--type", "merge", "-p",
                         json.dumps({"data": {"ca.crt": base64.b64encode(ageing).decode()}}),
                         namespace=NAMESPACE, check=True)

    # The CA is due (15m left, renewBefore 720h): the gate rotates it, keeping the old one trusted.
    def rotated():
        data = kind_cluster.secret_data(TLS_SECRET)
        new = x509.load_pem_x509_certificate(data["ca.crt"])
        return (data, new) if _key(new) != _key(old_ca) and "ca-previous.crt" in data else None

    data, new_ca = wait_for(rotated, timeout=300, interval=1, description="the CA rotated in the Secret")
    wait_for(lambda: {_key(c) for c in _bundle(kind_cluster)} == {_key(new_ca), _key(old_ca)},
             timeout=120, interval=1, description="the caBundle with the new and the old CA")
    tls = x509.load_pem_x509_certificate(data["tls.crt"])
    tls.verify_directly_issued_by(new_ca)

    # After the propagation delay every pod serves a certificate of the new CA.
    def all_switched():
        pods = kind_cluster.ready_gate_pods()
        served = [_served_certificate(kind_cluster, pod) for pod in pods]
        if len(pods) != 3 or any(cert is None for cert in served):
            return False
        try:
            for cert in served:
                cert.verify_directly_issued_by(new_ca)
        except (InvalidSignature, ValueError, TypeError):  # signed by another CA: not yet
            return False
        return True

    wait_for(all_switched, timeout=300, interval=3, description="every gate pod serving the new CA's certificate")
    served_after_switch = stream.done
    wait_for(lambda: stream.done >= served_after_switch + 20, timeout=120, interval=0.2,
             description="requests decided with the new certificates")
    stream.stop()
    stream.join()
    assert stream.failures == []
    assert_all_recorded_once(kind_cluster, namespace, stream.total, failed_open_before=before)
