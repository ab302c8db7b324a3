"""`policies:` values become OscillationPattern objects the CRD accepts."""

from __future__ import annotations

import jsonschema
import yaml
from chart_helpers import VALUES_DIR, find, render


def test_policies_render_as_oscillation_patterns(helm_bin, crds):
    docs = render("policies.yaml")
    patterns = find(docs, "OscillationPattern")
    wanted = yaml.safe_load((VALUES_DIR / "policies.yaml").read_text())["policies"]
    assert [p["metadata"]["name"] for p in patterns] == [w["name"] for w in wanted]
    schema = crds["OscillationPattern"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for pattern, want in zip(patterns, wanted):
        assert pattern["apiVersion"] == "ai.prometheus-alerts-slm.io/v1"
        assert "namespace" not in pattern["metadata"]  # cluster-scoped
        assert pattern["spec"] == want["spec"]
        assert pattern["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        jsonschema.validate(pattern, schema)
    assert patterns[0]["metadata"]["labels"]["team"] == "platform"


def test_no_policies_by_default(default_docs):
    assert not find(default_docs, "OscillationPattern")


def test_policy_file_as_a_list(helm_bin, crds):
    docs = render(sets=(
        "policyFile[0].apiVersion=ai.prometheus-alerts-slm.io/v1",
        "policyFile[0].kind=OscillationPattern",
        "policyFile[0].metadata.name=a",
        "policyFile[0].spec.patternDefinition.patternType=scale-oscillation",
        "policyFile[1].apiVersion=ai.prometheus-alerts-slm.io/v1",
        "policyFile[1].kind=OscillationPattern",
        "policyFile[1].metadata.name=b",
        "policyFile[1].spec.patternDefinition.patternType=controller-fight",
    ))
    (cm,) = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-policy")]
    stream = [d for d in yaml.safe_load_all(cm["data"]["policy.yaml"]) if d]
    assert [d["metadata"]["name"] for d in stream] == ["a", "b"]
