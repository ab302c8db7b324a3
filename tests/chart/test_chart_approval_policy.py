"""The chart's approval policy: the API server itself checks that an approval names its writer."""

from __future__ import annotations

import subprocess

import yaml

from tests.chart.chart_helpers import CHART


def render(helm_bin, *args: str) -> list[dict]:
    res = subprocess.run([helm_bin, "template", "sg", str(CHART), "--namespace", "safety-gate",
                          "--show-only", "templates/approval-policy.yaml", *args],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        assert "could not find template" in res.stderr, res.stderr  # nothing rendered, not a broken chart
        return []
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def test_the_policy_and_its_binding_are_rendered_by_default(helm_bin):
    kinds = {d["kind"]: d for d in render(helm_bin, "--kube-version", "1.31.0")}
    assert set(kinds) == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    policy, binding = kinds["ValidatingAdmissionPolicy"], kinds["ValidatingAdmissionPolicyBinding"]
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": ["ai.prometheus-alerts-slm.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
         "resources": ["oscillationalerts"]}]
    (validation,) = policy["spec"]["validations"]
    assert "request.userInfo.username" in validation["expression"]
    assert policy["spec"]["failurePolicy"] == "Fail"


def test_it_can_be_turned_off_and_is_left_out_before_kubernetes_1_30(helm_bin):
    assert render(helm_bin, "--kube-version", "1.31.0", "--set", "approvals.verifyApprover=false") == []
    assert render(helm_bin, "--kube-version", "1.29.0") == []
