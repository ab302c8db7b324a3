"""Generic hygiene of every rendered object, for every supported value set."""

from __future__ import annotations

import pytest
from chart_helpers import NAMESPACE, render

VALUE_SETS = ["default.yaml", "cert-manager.yaml", "existing-secrets.yaml", "ha-off.yaml", "policies.yaml",
              "failure-policy-fail.yaml"]
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration", "OscillationPattern",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def nulls(node, path="$"):
    if node is None:
        yield path
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from nulls(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from nulls(v, f"{path}[{i}]")


@pytest.mark.parametrize("kube_version", ["1.29.0", "1.31.0"])
@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_objects_are_clean(helm_bin, values, kube_version):
    docs = render(values, kube_version=kube_version)
    assert docs
    seen = set()
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        where = f"{kind}/{meta['name']}"
        assert not list(nulls(doc)), (where, list(nulls(doc)))
        assert (kind, meta["name"]) not in seen, f"duplicate {where}"
        seen.add((kind, meta["name"]))
        assert len(meta["name"]) <= 63, where
        labels = meta.get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == "sg", where
        assert labels.get("app.kubernetes.io/name") == "safety-gate", where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        if kind in CLUSTER_SCOPED:
            assert "namespace" not in meta, where
        else:
            assert meta.get("namespace") == NAMESPACE, where


def test_long_release_names_stay_within_limits(helm_bin):
    import yaml
    from chart_helpers import CHART, run_helm, values_file

    name = "r" * 53  # Helm's maximum release name length
    out = run_helm("template", name, str(CHART), "-n", NAMESPACE, "-f", values_file("cert-manager.yaml"),
                   check=True).stdout
    for doc in (d for d in yaml.safe_load_all(out) if d):
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
