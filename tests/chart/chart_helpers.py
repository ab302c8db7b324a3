"""Helpers for the Helm chart tests (imported by conftest.py and the tests).

The tests shell out to a real `helm` v3 binary. It is looked up in this order:
`$HELM`, `$HOME/.cache/safety-gate/bin/helm`, `helm` on PATH. A missing helm is
a test FAILURE (never a skip): a green run must mean the chart was checked.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "safety-gate"
VALUES_DIR = Path(__file__).resolve().parent / "values"
NAMESPACE = "gate-system"
RELEASE = "sg"
FULLNAME = "sg-safety-gate"
WEBHOOK_FILE = "templates/validatingwebhookconfiguration.yaml"


def find_helm() -> str | None:
    env = os.environ.get("HELM")
    if env:
        return env if (Path(env).is_file() and os.access(env, os.X_OK)) else shutil.which(env)
    cached = Path.home() / ".cache" / "safety-gate" / "bin" / "helm"
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which("helm")


@functools.cache
def _helm_or_fail() -> str:
    helm = find_helm()
    if not helm:
        pytest.fail(
            "helm v3 not found: set HELM=/path/to/helm, or install it with "
            "`GOBIN=$HOME/.cache/safety-gate/bin go install helm.sh/helm/v3/cmd/helm@v3.19.0`",
            pytrace=False,
        )
    out = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or not out.stdout.strip().startswith("v3"):
        pytest.fail(f"{helm} is not a working helm v3: {out.stdout}{out.stderr}", pytrace=False)
    return helm


def run_helm(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    helm = _helm_or_fail()
    proc = subprocess.run(
        [helm, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HELM_CACHE_HOME": os.environ.get("HELM_CACHE_HOME", "/tmp/safety-gate-helm-cache")},
    )
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc


def values_file(name: str) -> str:
    path = VALUES_DIR / name
    assert path.is_file(), path
    return str(path)


@functools.cache
def _render(
    values: tuple[str, ...] = (),
    sets: tuple[str, ...] = (),
    namespace: str = NAMESPACE,
    kube_version: str | None = None,
    show_only: tuple[str, ...] = (),
    chart: str = str(CHART),
) -> str:
    args = ["template", RELEASE, chart, "--namespace", namespace]
    for v in values:
        args += ["-f", values_file(v) if "/" not in v else v]
    for s in sets:
        args += ["--set", s]
    if kube_version:
        args += ["--kube-version", kube_version]
    for s in show_only:
        args += ["--show-only", s]
    return run_helm(*args, check=True).stdout


def render_text(*values: str, sets=(), namespace=NAMESPACE, kube_version=None, show_only=(), chart=CHART) -> str:
    return _render(tuple(values), tuple(sets), namespace, kube_version, tuple(show_only), str(chart))


def render(*values: str, sets=(), namespace=NAMESPACE, kube_version=None, show_only=(), chart=CHART) -> list[dict]:
    text = render_text(*values, sets=sets, namespace=namespace, kube_version=kube_version,
                       show_only=show_only, chart=chart)
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def hooks(doc: dict) -> set[str]:
    ann = doc["metadata"].get("annotations") or {}
    return {h.strip() for h in ann.get("helm.sh/hook", "").split(",") if h.strip()}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}
