"""The chart installs into a real API server, its hooks are valid objects, and uninstall leaves no webhook.

``helm template`` and the chart tests (tests/chart) check what the chart renders; only a real
API server checks that every object is *accepted*: schema validation of each kind, RBAC
objects that reference real verbs, a webhook configuration the API server admits. There is
no kubelet here, so nothing runs: the release is installed ``--no-hooks`` (the migration Job
would wait forever), and the hook manifests are checked with ``kubectl apply --dry-run=server``
instead. The pre-delete hook cannot run either, so the uninstall test does what it would:
``safety-gate cleanup --webhook-config NAME`` (the command the hook Job runs), then
``helm uninstall --no-hooks``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from cluster import CHART_DIR, ControlPlane, default_bin_dir, pinned_versions

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
# The full set renders with a PostgreSQL DSN and a Redis URL (datastore Secret, migration Job).
VALUES = ["--set", "postgresql.dsn=postgresql://gate:secret@postgres.db.svc:5432/gate",
          "--set", "redis.url=redis://redis.db.svc:6379/0"]
HOOK_TEMPLATES = ["templates/secret-datastores.yaml", "templates/job-migrate.yaml", "templates/hook-cleanup.yaml"]


def helm(cluster: ControlPlane, tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "helm-config"), "HELM_DATA_HOME": str(tmp_path / "helm-data")}
    res = subprocess.run([str(default_bin_dir() / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
                         capture_output=True, text=True, timeout=180, env=env, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def get(cluster: ControlPlane, doc: dict[str, Any], namespace: str) -> subprocess.CompletedProcess[str]:
    kind = doc["kind"]
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    resource = f"{kind.lower()}.{group}" if group else kind.lower()
    scoped = [] if kind in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
                            "CustomResourceDefinition") else ["-n", doc["metadata"].get("namespace", namespace)]
    return cluster.kubectl("get", resource, doc["metadata"]["name"], *scoped, "-o", "name")


def webhook_config_name(manifest: list[dict[str, Any]]) -> str:
    [config] = [d for d in manifest if d["kind"] == "ValidatingWebhookConfiguration"]
    return config["metadata"]["name"]


def test_helm_install_is_accepted_object_by_object_and_the_gate_reads_its_environment(
        cluster: ControlPlane, namespace: str, tmp_path: Path) -> None:
    release = f"sgi-{namespace[-6:]}"
    installed = helm(cluster, tmp_path, "install", release, str(CHART_DIR), "--namespace", namespace,
                     "--no-hooks", "--timeout", "60s", *VALUES)
    assert "STATUS: deployed" in installed.stdout, installed.stdout
    try:
        manifest = documents(helm(cluster, tmp_path, "get", "manifest", release, "-n", namespace).stdout)
        kinds = {d["kind"] for d in manifest}
        assert {"Deployment", "Service", "ServiceAccount", "ValidatingWebhookConfiguration", "ClusterRole",
                "ClusterRoleBinding", "Role", "RoleBinding", "PodDisruptionBudget", "NetworkPolicy"} <= kinds, kinds
        missing = [f"{d['kind']}/{d['metadata']['name']}" for d in manifest if get(cluster, d, namespace).returncode]
        assert not missing, f"in the release but not in the cluster: {missing}"

        # Self-managed certificates: every SAFETY_GATE_* variable of the gate is a setting it reads,
        # and the chart's values parse (87600h ...) and name the release's own objects.
        [gate] = [d for d in manifest if d["kind"] == "Deployment"]
        container = gate["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        from webhook.settings import Settings

        fields = set(Settings.model_fields)
        unknown = [name for name in env if name.removeprefix("SAFETY_GATE_").lower() not in fields]
        assert not unknown, f"environment the gate ignores: {unknown}"
        settings = _settings_from(env)
        assert settings.cert_secret and settings.webhook_config == webhook_config_name(manifest)
        assert settings.service_name in {d["metadata"]["name"] for d in manifest if d["kind"] == "Service"}
        assert settings.ca_validity.days == 3650 and settings.cert_validity.days == 365
        assert settings.cert_renew_before.days == 30
    finally:
        helm(cluster, tmp_path, "uninstall", release, "-n", namespace, "--no-hooks", check=False)


def _settings_from(env: dict[str, str]) -> Any:
    from webhook.settings import Settings

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("SAFETY_GATE_")}
    try:
        os.environ.update(env)
        return Settings()
    except pydantic.ValidationError as exc:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"the chart's environment does not parse: {exc}") from None
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def test_the_hook_manifests_are_accepted_by_the_api_server(cluster: ControlPlane, namespace: str,
                                                           tmp_path: Path) -> None:
    release = f"sgh-{namespace[-6:]}"
    args = ["template", release, str(CHART_DIR), "--namespace", namespace,
            "--kube-version", pinned_versions()["kube-apiserver"], *VALUES]
    for template in HOOK_TEMPLATES:
        args += ["--show-only", template]
    rendered = helm(cluster, tmp_path, *args).stdout
    hooks = documents(rendered)
    assert {d["kind"] for d in hooks} >= {"Secret", "Job", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    for doc in hooks:
        assert doc["metadata"]["annotations"]["helm.sh/hook"], doc["metadata"]["name"]
    applied = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(hooks), applied.stdout

    # The pre-delete Job runs exactly the cleanup command, for the release's webhook configuration.
    full = documents(helm(cluster, tmp_path, "template", release, str(CHART_DIR), "--namespace", namespace,
                          "--kube-version", pinned_versions()["kube-apiserver"], *VALUES).stdout)
    [cleanup] = [d for d in hooks if d["kind"] == "Job" and "pre-delete" in d["metadata"]["annotations"]["helm.sh/hook"]]
    [container] = cleanup["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["cleanup", "--webhook-config", webhook_config_name(full)]
    [migrate] = [d for d in hooks if d["kind"] == "Job" and "pre-install" in d["metadata"]["annotations"]["helm.sh/hook"]]
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_uninstall_with_the_cleanup_hooks_intent_leaves_no_webhook(cluster: ControlPlane, namespace: str,
                                                                   tmp_path: Path) -> None:
    release = f"sgu-{namespace[-6:]}"
    helm(cluster, tmp_path, "install", release, str(CHART_DIR), "--namespace", namespace, "--no-hooks", *VALUES)
    manifest = documents(helm(cluster, tmp_path, "get", "manifest", release, "-n", namespace).stdout)
    name = webhook_config_name(manifest)
    assert cluster.kubectl("get", "validatingwebhookconfiguration", name).returncode == 0

    def cleanup() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "webhook", "cleanup", "--webhook-config", name,
                               "--kubeconfig", str(cluster.kubeconfig)], capture_output=True, text=True,
                              timeout=60, cwd=str(REPO), env={**os.environ, "COLUMNS": "200"}, check=False)

    first = cleanup()  # what the pre-delete hook Job does, before helm deletes the pods
    assert first.returncode == 0 and "deleted" in first.stdout, first.stdout + first.stderr
    assert cluster.kubectl("get", "validatingwebhookconfiguration", name).returncode != 0
    again = cleanup()  # a re-run hook: already gone is success
    assert again.returncode == 0 and "already gone" in again.stdout, again.stdout + again.stderr

    helm(cluster, tmp_path, "uninstall", release, "-n", namespace, "--no-hooks", "--timeout", "60s")
    assert helm(cluster, tmp_path, "status", release, "-n", namespace, check=False).returncode != 0
    left = [f"{d['kind']}/{d['metadata']['name']}" for d in manifest
            if d["kind"] != "CustomResourceDefinition" and get(cluster, d, namespace).returncode == 0]
    assert not left, f"left behind by uninstall: {left}"
