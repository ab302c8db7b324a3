"""`helm lint` accepts every supported value set and rejects schema violations."""

from __future__ import annotations

import pytest
from chart_helpers import CHART, VALUES_DIR, run_helm, values_file

VALID = [
    "default.yaml",
    "cert-manager.yaml",
    "existing-secrets.yaml",
    "ha-off.yaml",
    "policies.yaml",
    "failure-policy-fail.yaml",
]

# file -> a fragment the error must name
INVALID = {
    "invalid-cert-mode.yaml": "/certificates/mode",
    "invalid-failure-policy.yaml": "/webhook/failurePolicy",
    "invalid-unknown-key.yaml": "replicas",
    "invalid-policy-enforcement.yaml": "enforcementAction",
}


def test_every_values_file_is_covered():
    on_disk = {p.name for p in VALUES_DIR.glob("*.yaml")}
    assert on_disk == set(VALID) | set(INVALID)


def test_lint_chart_defaults(helm_bin):
    proc = run_helm("lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kube_version", ["1.29.0", "1.31.0"])
@pytest.mark.parametrize("name", VALID)
def test_lint_valid_values(helm_bin, name, kube_version):
    proc = run_helm("lint", "--strict", str(CHART), "-f", values_file(name), "--kube-version", kube_version)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(INVALID))
def test_lint_rejects_schema_violations(helm_bin, name):
    proc = run_helm("lint", str(CHART), "-f", values_file(name))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"helm lint accepted {name}:\n{out}"
    assert INVALID[name] in out, out


def test_template_rejects_schema_violations(helm_bin):
    proc = run_helm("template", "sg", str(CHART), "--set", "certificates.mode=bogus")
    assert proc.returncode != 0
    assert "certificates/mode" in proc.stderr


def test_secret_mode_requires_secret_and_ca_bundle(helm_bin):
    proc = run_helm("template", "sg", str(CHART), "--set", "certificates.mode=secret")
    assert proc.returncode != 0
    assert "existingSecret" in proc.stderr and "caBundle" in proc.stderr


def test_policies_need_a_name(helm_bin):
    proc = run_helm("template", "sg", str(CHART), "--set", "policies[0].spec.enforcementAction=warn")
    assert proc.returncode != 0
    assert "name" in proc.stderr
