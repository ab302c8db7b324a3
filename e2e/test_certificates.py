"""Self-managed certificates rotating under traffic, with two replicas, against a real API server.

Two ``safety-gate serve`` processes (replicas A and B) share one certificate Secret and one
ValidatingWebhookConfiguration, with validities short enough that within a minute the
serving certificate is renewed with the same CA, the CA is rotated (old + new CA in the
caBundle) and the old CA is dropped (new CA only). Meanwhile:

* a client keeps calling replica A over TLS, trusting only the caBundle it last read from the
  webhook configuration — on a keep-alive connection opened at the start, and on a new
  connection per request — and the API server itself calls A through the configuration
  (``failurePolicy: Fail``) for every ``scale`` of a Deployment: not one request may fail;
* a watch records every version of the Secret: one chain of writes, each one warranted by
  the plan at the moment it was written (a replica racing with stale data would have written
  a step the plan no longer called for), no CA coming back;
* a poller records every caBundle: exactly ``[A]`` → ``[B, A]`` → ``[B]``, the same in
  every webhook of the configuration;
* at the end both replicas serve the Secret's current certificate.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.client
import itertools
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
import pytest
from cluster import ControlPlane, deployment, wait_for
from cryptography.hazmat.primitives import serialization

from tests.gateproc import GateProcess, free_port
from webhook.tls.authority import CLOCK_SKEW
from webhook.tls.certinfo import load_certificates
from webhook.tls.rotation import (
    CA_CERT,
    CA_PREVIOUS,
    ROTATED_AT,
    TLS_CERT,
    RotationPolicy,
    parse_time,
    plan,
    service_hosts,
)

pytestmark = pytest.mark.e2e

SECONDS = datetime.timedelta(seconds=1)
# CA due 40 s after it is made, serving certificates every 12 s, old CA dropped 10 s after a rotation.
POLICY = RotationPolicy(ca_validity=70 * SECONDS, cert_validity=24 * SECONDS, renew_before=30 * SECONDS,
                        propagation=2 * SECONDS, overlap=10 * SECONDS)
SERVICE = "gate"
SECRET = "gate-tls"


def fingerprint(pem_or_der: bytes) -> str:
    if pem_or_der.startswith(b"-----"):
        pem_or_der = load_certificates(pem_or_der)[0].public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(pem_or_der).hexdigest()[:12]


def bundle_fingerprints(pem: bytes) -> tuple[str, ...]:
    return tuple(fingerprint(c.public_bytes(serialization.Encoding.DER)) for c in load_certificates(pem))


def webhook_configuration(name: str, *, url: str, namespace: str) -> dict[str, Any]:
    """Two webhooks, both to be kept by the gate: one the API server calls (Fail), one that matches nothing."""
    common = {"admissionReviewVersions": ["v1"], "sideEffects": "None", "timeoutSeconds": 5,
              "clientConfig": {"url": url},
              "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {**common, "name": "scale.rotation.safety-gate.test", "failurePolicy": "Fail",
             "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                        "resources": ["deployments", "deployments/scale"], "scope": "Namespaced"}]},
            {**common, "name": "idle.rotation.safety-gate.test", "failurePolicy": "Ignore",
             "objectSelector": {"matchLabels": {"never": "matches"}},
             "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                        "resources": ["configmaps"], "scope": "Namespaced"}]},
        ],
    }


@dataclass
class Recorder:
    """Everything observed while the certificates rotate."""

    stop: threading.Event = field(default_factory=threading.Event)
    bundle: bytes = b""
    bundles: list[tuple[str, ...]] = field(default_factory=list)      # distinct caBundles, in order
    mismatched_webhooks: list[str] = field(default_factory=list)
    secret_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ok_new: int = 0
    ok_keepalive: int = 0
    ok_api: int = 0
    failures: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)                   # distinct certificates seen, in order
    errors: list[str] = field(default_factory=list)                   # recorder trouble (not the gate's)


def poll_bundles(admission: kubernetes.client.AdmissionregistrationV1Api, name: str, rec: Recorder) -> None:
    while not rec.stop.is_set():
        try:
            config = admission.read_validating_webhook_configuration(name, _request_timeout=5)
            bundles = {wh.client_config.ca_bundle for wh in config.webhooks}
            if len(bundles) != 1:
                rec.mismatched_webhooks.append(repr(bundles))
            encoded = next(iter(bundles))
            if encoded:
                pem = base64.b64decode(encoded)
                rec.bundle = pem
                prints = bundle_fingerprints(pem)
                if not rec.bundles or rec.bundles[-1] != prints:
                    rec.bundles.append(prints)
        except Exception as exc:  # noqa: BLE001 - recorded, asserted empty
            rec.errors.append(f"bundle poll: {exc}")
        time.sleep(0.1)


def watch_secret(core: kubernetes.client.CoreV1Api, namespace: str, rec: Recorder) -> None:
    version = core.list_namespaced_secret(namespace, _request_timeout=5).metadata.resource_version
    while not rec.stop.is_set():
        watch = kubernetes.watch.Watch()
        try:
            for event in watch.stream(core.list_namespaced_secret, namespace, field_selector=f"metadata.name={SECRET}",
                                      resource_version=version, timeout_seconds=2, _request_timeout=10):
                obj = event["object"]
                version = obj.metadata.resource_version
                rec.secret_events.append((event["type"], {
                    "resourceVersion": version, "annotations": dict(obj.metadata.annotations or {}),
                    "data": {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}}))
        except Exception as exc:  # noqa: BLE001
            rec.errors.append(f"secret watch: {exc}")
            time.sleep(0.2)


def client_context(bundle: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=bundle.decode())
    ctx.check_hostname = True
    return ctx


def call_gate(port: int, rec: Recorder) -> None:
    """A keep-alive connection opened once, and a new connection per request, each trusting the caBundle."""
    wait_for(lambda: rec.bundle, timeout=30, description="a caBundle to trust")
    keepalive = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(rec.bundle), timeout=5)
    while not rec.stop.is_set():
        try:
            keepalive.request("GET", "/healthz")
            reply = keepalive.getresponse()
            reply.read()
            assert reply.status == 200, reply.status
            rec.ok_keepalive += 1
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            rec.failures.append(f"keep-alive: {exc!r}")
            keepalive.close()
            keepalive = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(rec.bundle), timeout=5)
        trusted = rec.bundle
        fresh = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(trusted), timeout=5)
        try:
            fresh.request("GET", "/healthz", headers={"Connection": "close"})
            reply = fresh.getresponse()
            reply.read()
            assert reply.status == 200, reply.status
            rec.ok_new += 1
        except Exception as exc:  # noqa: BLE001
            rec.failures.append(f"new connection trusting {bundle_fingerprints(trusted)}: {exc!r}")
        finally:
            fresh.close()
        time.sleep(0.05)
    keepalive.close()


def scale_through_api_server(apps: kubernetes.client.AppsV1Api, namespace: str, rec: Recorder) -> None:
    """The API server calls replica A for each scale, trusting the caBundle it has loaded."""
    replicas = 1
    while not rec.stop.is_set():
        replicas = replicas % 4 + 1
        try:
            apps.patch_namespaced_deployment_scale("target", namespace, {"spec": {"replicas": replicas}},
                                                   _request_timeout=10)
            rec.ok_api += 1
        except Exception as exc:  # noqa: BLE001
            rec.failures.append(f"API server scale: {getattr(exc, 'body', exc)}")
        time.sleep(0.3)


def served_certificate(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with contextlib.closing(ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 5))) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return fingerprint(der)


def watch_served(port: int, rec: Recorder) -> None:
    while not rec.stop.is_set():
        with contextlib.suppress(OSError):
            seen = served_certificate(port)
            if not rec.served or rec.served[-1] != seen:
                rec.served.append(seen)
        time.sleep(0.2)


def check_secret_chain(events: list[tuple[str, dict[str, Any]]], *, hosts: tuple[str, ...]) -> list[str]:
    """Every write was the step the plan called for, given the version before it and the time it was made."""
    assert events, "the Secret was never written"
    assert events[0][0] == "ADDED", events[0][0]
    assert all(kind == "MODIFIED" for kind, _ in events[1:]), [kind for kind, _ in events]
    versions = [obj["resourceVersion"] for _, obj in events]
    assert len(set(versions)) == len(versions), "a resourceVersion was seen twice"
    actions = [obj["annotations"].get("safety-gate.ai.prometheus-alerts-slm.io/last-action") for _, obj in events]
    assert actions[0] == "bootstrap" and "bootstrap" not in actions[1:], actions
    cas_seen: list[str] = []
    for (_, before), (_, after) in itertools.pairwise(events):
        action = after["annotations"]["safety-gate.ai.prometheus-alerts-slm.io/last-action"]
        assert before["data"] != after["data"], f"a write changed nothing: {action}"
        if action in ("renew-serving", "rotate-ca"):
            # The new serving certificate says when it was made: not-before is backdated by CLOCK_SKEW
            # and truncated to the second, as is every boundary the plan compares it with.
            made = load_certificates(after["data"][TLS_CERT])[0].not_valid_before_utc + CLOCK_SKEW
            step = plan(now=made, data=before["data"], hosts=hosts,
                        rotated_at=parse_time(before["annotations"].get(ROTATED_AT)), policy=POLICY)
            assert step.action == action, f"{action} written at {made} where the plan says {step.action}"
        ca = fingerprint(after["data"][CA_CERT])
        if not cas_seen or cas_seen[-1] != ca:
            assert ca not in cas_seen, "an earlier CA came back"
            cas_seen.append(ca)
    return actions


def test_two_replicas_rotate_certificates_under_traffic_without_a_failed_request(
        cluster: ControlPlane, namespace: str, gate_stores: tuple[str, str], tmp_path: Path) -> None:
    dsn, redis_url = gate_stores
    api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = kubernetes.client.CoreV1Api(api)
    admission = kubernetes.client.AdmissionregistrationV1Api(api)
    apps = kubernetes.client.AppsV1Api(api)
    config_name = f"rotation-{namespace}"
    port_a, port_b = free_port(), free_port()
    cluster.apply(deployment("target", namespace))
    cluster.apply(webhook_configuration(config_name, url=f"https://127.0.0.1:{port_a}/validate", namespace=namespace))

    def replica(name: str, port: int) -> GateProcess:
        env = {
            "SAFETY_GATE_NAMESPACE": namespace, "SAFETY_GATE_POD_NAME": name,
            "SAFETY_GATE_CERT_SECRET": SECRET, "SAFETY_GATE_WEBHOOK_CONFIG": config_name,
            "SAFETY_GATE_SERVICE_NAME": SERVICE, "SAFETY_GATE_CA_VALIDITY": "70s",
            "SAFETY_GATE_CERT_VALIDITY": "24s", "SAFETY_GATE_CERT_RENEW_BEFORE": "30s",
            "SAFETY_GATE_CERT_PROPAGATION": "2s", "SAFETY_GATE_CERT_OVERLAP": "10s",
            "SAFETY_GATE_CERT_CHECK_INTERVAL": "1",
        }
        return GateProcess(data_dir=tmp_path / name, postgres_dsn=dsn, redis_url=redis_url, port=port, env=env,
                           extra_args=["--kubeconfig", str(cluster.kubeconfig), "--cluster-id", "e2e-rotation"])

    gates = [replica("gate-a", port_a), replica("gate-b", port_b)]
    rec = Recorder()
    threads = [threading.Thread(target=poll_bundles, args=(admission, config_name, rec), daemon=True),
               threading.Thread(target=watch_secret, args=(core, namespace, rec), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        starters = [threading.Thread(target=gate.start) for gate in gates]  # at once: they race to create
        for starter in starters:
            starter.start()
        for starter in starters:
            starter.join()
        for gate in gates:
            assert gate.process is not None and gate.process.poll() is None, gate.log()
        traffic = [threading.Thread(target=call_gate, args=(port_a, rec), daemon=True),
                   threading.Thread(target=watch_served, args=(port_a, rec), daemon=True)]
        for thread in traffic:
            thread.start()
        # the API server trusts the bundle asynchronously: start its traffic once one call got through
        wait_for(lambda: _scaled(apps, namespace), timeout=20, interval=0.2, description="the API server to call A")
        api_traffic = threading.Thread(target=scale_through_api_server, args=(apps, namespace, rec), daemon=True)
        api_traffic.start()
        threads += [*traffic, api_traffic]

        wait_for(lambda: len(rec.bundles) >= 3, timeout=90, interval=0.5,
                 description="the caBundle to go old -> old+new -> new")
        secret = core.read_namespaced_secret(SECRET, namespace)
        final_cert = fingerprint(base64.b64decode(secret.data[TLS_CERT]))
        for port in (port_a, port_b):
            wait_for(lambda port=port: served_certificate(port) == fingerprint(
                base64.b64decode(core.read_namespaced_secret(SECRET, namespace).data[TLS_CERT])),
                timeout=10, interval=0.2, description=f"the replica on {port} to serve the Secret's certificate")
        time.sleep(1)  # a last second of traffic on the final certificate
    finally:
        rec.stop.set()
        for thread in threads:
            thread.join(timeout=15)
        logs = "\n".join(f"--- {gate.args[-1]}:\n{gate.log()[-3000:]}" for gate in gates)
        for gate in gates:
            gate.stop()
        cluster.kubectl("delete", "validatingwebhookconfiguration", config_name, "--ignore-not-found")

    assert not rec.errors, rec.errors[:5]
    assert not rec.failures, f"{len(rec.failures)} failed request(s): {rec.failures[:5]}\n{logs}"
    assert rec.ok_keepalive > 100 and rec.ok_new > 100 and rec.ok_api > 20, (rec.ok_keepalive, rec.ok_new, rec.ok_api)

    # caBundle: [A] -> [B, A] -> [B], always the same in both webhooks
    assert not rec.mismatched_webhooks, rec.mismatched_webhooks[:3]
    old, both, new = rec.bundles[:3]
    assert len(old) == 1 and both == (both[0], old[0]) and new == (both[0],), rec.bundles
    assert len(rec.bundles) == 3, rec.bundles

    # the Secret: one chain of warranted writes
    actions = check_secret_chain(rec.secret_events, hosts=service_hosts(service=SERVICE, namespace=namespace))
    assert "renew-serving" in actions[: actions.index("rotate-ca")], actions  # renewed with the same CA first
    assert actions.index("rotate-ca") < actions.index("drop-previous"), actions
    rotate_at = actions.index("rotate-ca")
    assert CA_PREVIOUS in rec.secret_events[rotate_at][1]["data"]
    assert CA_PREVIOUS not in rec.secret_events[actions.index("drop-previous")][1]["data"]
    writers = {obj["annotations"]["safety-gate.ai.prometheus-alerts-slm.io/written-by"] for _, obj in rec.secret_events}
    assert writers <= {"gate-a", "gate-b"}, writers

    # replica A really switched: certificates of the old and the new CA were served, ending with the Secret's
    assert len(rec.served) >= 3 and rec.served[-1] == final_cert, (rec.served, final_cert)
    assert len(set(rec.served)) == len(rec.served), f"a replaced certificate came back: {rec.served}"


def _scaled(apps: kubernetes.client.AppsV1Api, namespace: str) -> bool:
    apps.patch_namespaced_deployment_scale("target", namespace, {"spec": {"replicas": 2}}, _request_timeout=10)
    return True

