"""Truthful history with the real API server and controller-manager (issue 13, item 1).

The gate admits a change before the API server stores it. Each test makes an admitted change fail
to land the way real clusters do — a PipelineRun re-created under a name that exists (409
AlreadyExists), a second validating webhook refusing it, a patch the API server retries on conflict
(admission re-run under a new uid) — and checks that the history says so: the change is
``not-applied`` within seconds (or counted once) and no pattern forms from it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import (
    CertificateAuthority,
    ControlPlane,
    deployment,
    free_port,
    grant_remediation_rights,
    replicas_of,
    service_account,
    wait_for,
    write_pem,
)
from test_kubernaut import Kubernaut

SETTLE = 30  # seconds: the confirmation window (10s) plus the sweep, with room on a busy machine


def statuses(gate, namespace: str, *, name: str = "cart") -> list[tuple[str, str]]:
    """(request uid, status) of every recorded action on ``namespace``/``name``, oldest first."""
    rows = gate.sql(
        "SELECT t.request_uid, coalesce(s.status, 'recorded') AS status FROM resource_action_traces t"
        " LEFT JOIN action_status s ON s.cluster_id = t.cluster_id AND s.request_uid = t.request_uid"
        " WHERE t.namespace = $1 AND t.name = $2 ORDER BY t.action_timestamp", namespace, name)
    return [(row["request_uid"], row["status"]) for row in rows]


def settled(gate, namespace: str, *, count: int, name: str = "cart") -> list[str]:
    """Poll until ``count`` actions are recorded and none is still proposed; their statuses."""
    def done():
        found = statuses(gate, namespace, name=name)
        return [s for _, s in found] if len(found) == count and all(s != "proposed" for _, s in found) else None
    return wait_for(done, timeout=SETTLE, interval=0.3, description=f"{count} settled actions")


def agent_of(cluster: ControlPlane, namespace: str) -> str:
    agent = service_account(namespace, "agent")
    grant_remediation_rights(cluster, namespace, subjects=[agent])
    return agent


def scale(cluster: ControlPlane, namespace: str, replicas: int, *, as_user: str) -> subprocess.CompletedProcess:
    return cluster.kubectl("scale", "deployment/cart", f"--replicas={replicas}", namespace=namespace,
                           as_user=as_user)


@contextlib.contextmanager
def second_webhook(cluster: ControlPlane, namespace: str, tmp_path: Path, *args: str) -> Iterator[Path]:
    """Run ``e2e/second_webhook.py`` and register it for ``namespace``'s workloads (failurePolicy
    Fail); yields the file it logs every review to."""
    ca = CertificateAuthority("second-webhook-ca")
    cert, key = ca.issue_localhost_server()
    port, log = free_port(), tmp_path / "second-webhook.jsonl"
    log.touch()
    command = [sys.executable, str(Path(__file__).with_name("second_webhook.py")), "--port", str(port),
               "--cert", str(write_pem(tmp_path / "tls.crt", cert)),
               "--key", str(write_pem(tmp_path / "tls.key", key, private=True)), "--log", str(log), *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = f"second-webhook-{namespace}"
    try:
        import base64
        import ssl
        import urllib.request

        context = ssl.create_default_context(cadata=ca.cert_pem.decode())

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/ready", context=context, timeout=2):
                    return True
            except OSError:
                return False

        wait_for(up, timeout=30, interval=0.2, description="the second webhook to serve")
        cluster.apply({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "second.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/validate",
                                 "caBundle": base64.b64encode(ca.cert_pem).decode()},
                "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                           "resources": ["deployments", "deployments/scale"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail", "timeoutSeconds": 10,
            }],
        })
        yield log
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
        process.terminate()
        process.wait(timeout=10)


def reviews_seen(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_a_409_recreate_of_a_pipelinerun_is_not_applied_and_forms_no_loop(cluster: ControlPlane, gate,
                                                                          namespace: str):
    cluster.apply(deployment("cart", namespace))
    kubernaut = Kubernaut(cluster, namespace)
    assert kubernaut.run().returncode == 0
    run = json.loads(json.dumps(kubernaut_run_manifest(kubernaut)))
    for attempt in range(3):  # Kubernaut re-creating the run it did not delete: the name exists
        again = cluster.kubectl("create", "-f", "-", input=json.dumps(run), namespace=kubernaut.workflows,
                                as_user=service_account("kubernaut-system", "workflowexecution-controller"))
        assert again.returncode != 0 and "AlreadyExists" in again.stderr, again.stderr
        # Admission ran before the storage check: the gate saw it, and marks it not-applied.
        assert settled(gate, namespace, count=2 + attempt) == ["confirmed", *["not-applied"] * (1 + attempt)]
    # Four admitted creations of one workflow on one target would be an ineffective loop (three
    # earlier runs, unassessed); only one of them happened, so the next two runs are admitted.
    assert kubernaut.run().returncode == 0
    assert kubernaut.run().returncode == 0
    refused = kubernaut.run()  # three runs that did happen: now it is a loop
    assert refused.returncode != 0 and "ineffective-loop" in refused.stderr, refused.stderr
    assert settled(gate, namespace, count=6) == ["confirmed", "not-applied", "not-applied", "not-applied",
                                                "confirmed", "confirmed"]


def kubernaut_run_manifest(kubernaut: Kubernaut) -> dict:
    from test_kubernaut import kubernaut_pipelinerun

    return kubernaut_pipelinerun(workflows=kubernaut.workflows, source=kubernaut.source,
                                 execution=f"we-cart-{kubernaut.runs}", workflow_id=kubernaut.workflow_id,
                                 target=kubernaut.target)


def wait_registered(cluster: ControlPlane, namespace: str, log: Path) -> None:
    """The API server loads webhook configurations asynchronously: poll with a person's label
    write (no gated change, nothing recorded) until the second webhook sees one."""
    probes = iter(range(1000))

    def seen() -> bool:
        cluster.kubectl("label", "deployment/cart", f"probe={next(probes)}", "--overwrite", namespace=namespace,
                        check=True)
        return bool(reviews_seen(log))
    wait_for(seen, timeout=30, interval=0.5, description="the second webhook to be called")


def test_a_change_another_webhook_denies_is_not_applied_and_forms_no_pattern(cluster: ControlPlane, gate,
                                                                             namespace: str, tmp_path: Path):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=3))
    assert scale(cluster, namespace, 5, as_user=agent).returncode == 0  # 3→5 lands
    with second_webhook(cluster, namespace, tmp_path, "--deny-replicas", "3") as log:
        wait_registered(cluster, namespace, log)
        for _ in range(2):  # 5→3: our gate admits it (one reversal), the other webhook refuses it
            refused = scale(cluster, namespace, 3, as_user=agent)
            assert refused.returncode != 0, refused.stdout
            assert "second-webhook: 3 replicas are not allowed here" in refused.stderr, refused.stderr
        assert settled(gate, namespace, count=3) == ["confirmed", "not-applied", "not-applied"]
        assert [r["allowed"] for r in reviews_seen(log) if r["replicas"] == 3] == [False, False]
    assert replicas_of(cluster, "cart", namespace) == 5
    # Had the refused 5→3 counted, 5→7 would be a second reversal (3→5→3→7) and cooled; only 3→5
    # happened, so it is the same direction again.
    moved = scale(cluster, namespace, 7, as_user=agent)
    assert moved.returncode == 0, moved.stderr
    assert settled(gate, namespace, count=4) == ["confirmed", "not-applied", "not-applied", "confirmed"]
    assert gate.count("SELECT count(*) FROM restrictions WHERE target_key = $1", f"{namespace}/Deployment/cart") == 0


def test_a_patch_retried_on_conflict_counts_once(cluster: ControlPlane, gate, namespace: str, tmp_path: Path):
    agent = agent_of(cluster, namespace)
    cluster.apply(deployment("cart", namespace, replicas=3))
    with second_webhook(cluster, namespace, tmp_path, "--hold-replicas", "6", "--hold-seconds", "2") as log:
        wait_registered(cluster, namespace, log)
        before = len(statuses(gate, namespace))
        scaling = subprocess.Popen(
            [cluster.binary("kubectl"), f"--kubeconfig={cluster.kubeconfig}", f"--as={agent}",
             f"--namespace={namespace}", "scale", "deployment/cart", "--replicas=6"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # While the scale's admission is held, someone else writes the Deployment: the scale's
        # write then conflicts, and the API server retries it, running admission again.
        wait_for(lambda: len(statuses(gate, namespace)) > before, timeout=10, interval=0.05,
                 description="the gate to record the scale")
        cluster.kubectl("annotate", "deployment/cart", "example.com/touched=yes", "--overwrite",
                        namespace=namespace, check=True)
        _, err = scaling.communicate(timeout=60)
        assert scaling.returncode == 0, err
    assert replicas_of(cluster, "cart", namespace) == 6
    scales = [r for r in reviews_seen(log) if r["replicas"] == 6 and r["subResource"] == "scale"]
    if len(scales) < 2:
        pytest.fail(f"the API server did not retry the scale on conflict: {scales}")
    found = settled(gate, namespace, count=before + len(scales))
    # The same change proposed by each admission run of one patch: it landed once, it counts once.
    assert sorted(found[before:]) == ["confirmed", *["not-applied"] * (len(scales) - 1)]
