"""The CRDs: names, scope, printer columns, structural schemas that reject bad input,
and the guarantee that charts/safety-gate/crds/ is their only source."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import pytest
import yaml
from chart_helpers import CHART, REPO

GROUP = "ai.prometheus-alerts-slm.io"
OUR_KINDS = {"OscillationAlert", "OscillationPattern", "ActionHistorySummary", "EffectivenessMetric"}
SUMMARY_KINDS = {"ActionHistorySummary", "EffectivenessMetric"}  # written whole by the gate: no status subresource
CRD_FILES = ["actionhistorysummaries.yaml", "effectivenessmetrics.yaml", "oscillationalerts.yaml",
             "oscillationpatterns.yaml"]


def schema_of(crd) -> dict:
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def test_exactly_the_four_crd_files():
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == CRD_FILES


def test_crds_parse_and_are_named(crds):
    assert set(crds) == OUR_KINDS
    for kind, crd in crds.items():
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == GROUP
        names = crd["spec"]["names"]
        assert crd["metadata"]["name"] == f"{names['plural']}.{GROUP}"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1" and version["served"] is True and version["storage"] is True
        if kind in SUMMARY_KINDS:
            assert "subresources" not in version
        else:
            assert version["subresources"] == {"status": {}}


def test_oscillation_alert_names(crds):
    crd = crds["OscillationAlert"]
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert names["plural"] == "oscillationalerts"
    assert names["singular"] == "oscillationalert"
    assert names["shortNames"] == ["oa"]
    assert names["categories"] == ["safety-gate"]


def test_oscillation_pattern_names(crds):
    crd = crds["OscillationPattern"]
    assert crd["spec"]["scope"] == "Cluster"
    names = crd["spec"]["names"]
    assert names["plural"] == "oscillationpatterns"
    assert "op" in names["shortNames"]


def test_summary_names(crds):
    for kind, plural, short in (("ActionHistorySummary", "actionhistorysummaries", "ahs"),
                                ("EffectivenessMetric", "effectivenessmetrics", "em")):
        crd = crds[kind]
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["plural"] == plural
        assert crd["spec"]["names"]["shortNames"] == [short]
        assert crd["spec"]["names"]["categories"] == ["safety-gate"]


def columns(crd):
    (version,) = crd["spec"]["versions"]
    return [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]


def test_printer_columns(crds):
    assert columns(crds["OscillationAlert"]) == [
        ("Target", "string", ".spec.target"),
        ("Pattern", "string", ".spec.patternType"),
        ("Severity", "string", ".spec.severity"),
        ("Phase", "string", ".status.phase"),
        # a "date" column prints time-since, so a future end time would read "<invalid>"
        ("Until", "string", ".status.cooldownUntil"),
        ("Denied", "integer", ".status.deniedRequests"),
        ("Warned", "integer", ".status.warnedRequests"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    assert columns(crds["ActionHistorySummary"]) == [
        ("Target", "string", ".spec.target"),
        ("Actions", "integer", ".status.totalActions"),
        ("Last", "date", ".status.lastActionTime"),
        ("Patterns", "string", ".status.patterns"),
        ("Effectiveness", "number", ".status.effectiveness.overallScore"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    assert columns(crds["EffectivenessMetric"]) == [
        ("Scope", "string", ".spec.scope.scopeType"),
        ("Samples", "integer", ".status.sampleSize"),
        ("Average", "number", ".status.averageScore"),
        ("Trend", "string", ".status.trend"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    assert columns(crds["OscillationPattern"]) == [
        ("Pattern", "string", ".spec.patternDefinition.patternType"),
        ("Strategy", "string", ".spec.preventionStrategy.strategy"),
        ("Enforcement", "string", ".spec.enforcementAction"),
        ("Window", "string", ".spec.patternDefinition.detectionCriteria.timeWindow"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


def walk(node, path="$"):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", sorted(OUR_KINDS))
def test_schemas_are_structural(crds, kind):
    """Every node has a type; arrays have items; no constructs the API server rejects."""
    for path, node in walk(schema_of(crds[kind])):
        assert "type" in node, path
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), path
        for banned in ("$ref", "oneOf", "anyOf", "allOf", "not", "additionalItems", "dependencies", "definitions"):
            assert banned not in node, (path, banned)
        if node.get("additionalProperties") is not None:
            assert "properties" not in node, path  # mutually exclusive in structural schemas
        if "enum" in node and "default" in node:
            assert node["default"] in node["enum"], path


@pytest.mark.parametrize("kind", sorted(OUR_KINDS))
def test_spec_fields_have_descriptions(crds, kind):
    spec = schema_of(crds[kind])["properties"]["spec"]
    for path, node in walk(spec, "spec"):
        if path.count(".") <= 2 and "[]" not in path and "{}" not in path:
            assert node.get("description"), path


ALERT = {
    "apiVersion": f"{GROUP}/v1",
    "kind": "OscillationAlert",
    "metadata": {"name": "deployment-cart-scale-oscillation", "namespace": "shop"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "cart"},
        "target": "Deployment/cart",
        "patternType": "scale-oscillation",
        "severity": "high",
        "confidence": 0.92,
        "strategy": "cooling-period",
        "enforcementAction": "enforce",
        "actor": "system:serviceaccount:kubernaut:remediator",
        "message": "safety-gate: scale-oscillation on Deployment shop/cart ...",
        "alternative": "",
        "clusterId": "default",
        "approval": {"approvedBy": "alice", "reason": "load test", "approvedAt": "2026-11-21T21:00:00Z"},
    },
    "status": {
        "phase": "PendingApproval",
        "occurrences": 3,
        "firstSeen": "2026-11-21T20:00:00Z",
        "lastSeen": "2026-11-21T20:41:00Z",
        "cooldownUntil": "2026-11-21T21:30:00Z",
        "deniedRequests": 2,
        "evidence": [{"timestamp": "2026-11-21T20:00:00Z", "actionType": "scale_deployment",
                      "actor": "system:serviceaccount:kubernaut:remediator", "summary": "replicas 3→5",
                      "requestUid": "0b7c"}],
        "approvalUsedAt": "2026-11-21T21:01:00Z",
        "approvalUsedBy": "system:serviceaccount:kubernaut:remediator",
        "observedGeneration": 2,
        "message": "cooling period",
    },
}

PATTERN = {
    "apiVersion": f"{GROUP}/v1",
    "kind": "OscillationPattern",
    "metadata": {"name": "scale-oscillation"},
    "spec": {
        "enforcementAction": "dryrun",
        "patternDefinition": {
            "patternType": "scale-oscillation",
            "description": "replicas flapping",
            "detectionCriteria": {"minOccurrences": 3, "timeWindow": "2h", "actionSequence": ["scale_deployment"],
                                  "thresholds": {"directionChanges": 2}},
        },
        "resourceScope": {"resourceTypes": ["Deployment"], "namespaces": ["shop"], "labels": {"tier": "web"}},
        "preventionStrategy": {"strategy": "cooling-period", "parameters": {"cooldownPeriod": "30m"},
                               "alerting": {"enabled": True, "severity": "warning", "channels": ["slack"]}},
    },
    "status": {"statistics": {"totalDetections": 4, "preventionSuccessRate": 0.75}},
}


def mutate(obj, path, value):
    out = copy.deepcopy(obj)
    node = out
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()


def validate(crds, kind, obj):
    jsonschema.validate(obj, schema_of(crds[kind]))


def test_valid_examples(crds):
    validate(crds, "OscillationAlert", ALERT)
    validate(crds, "OscillationPattern", PATTERN)
    for pattern in ("controller-fight", "cascading-failure", "ineffective-loop", "resource-thrashing"):
        validate(crds, "OscillationPattern", mutate(PATTERN, "spec.patternDefinition.patternType", pattern))
    for window in ("30s", "90m", "2h", "1d"):
        validate(crds, "OscillationPattern",
                 mutate(PATTERN, "spec.patternDefinition.detectionCriteria.timeWindow", window))


@pytest.mark.parametrize(("path", "value"), [
    ("spec.patternType", "flapping"),
    ("spec.severity", "urgent"),
    ("spec.confidence", 1.5),
    ("spec.confidence", -0.1),
    ("spec.strategy", "ignore"),
    ("spec.enforcementAction", "block"),
    ("spec.targetRef", {"kind": "Deployment"}),
    ("spec.approval", {"approvedBy": "alice"}),
    ("status.phase", "Pending"),
    ("status.occurrences", -1),
    ("status.deniedRequests", -3),
    ("status.evidence", [{"summary": "x"}] * 51),
])
def test_alert_rejects(crds, path, value):
    with pytest.raises(jsonschema.ValidationError):
        validate(crds, "OscillationAlert", mutate(ALERT, path, value))


@pytest.mark.parametrize(("path", "value"), [
    ("spec.enforcementAction", "enforcing"),
    ("spec.patternDefinition.patternType", "flapping"),
    ("spec.patternDefinition.patternType", DELETE),
    ("spec.patternDefinition.detectionCriteria.minOccurrences", 1),
    ("spec.patternDefinition.detectionCriteria.minOccurrences", DELETE),
    ("spec.patternDefinition.detectionCriteria.timeWindow", "2hours"),
    ("spec.patternDefinition.detectionCriteria.timeWindow", "1w"),
    ("spec.patternDefinition.detectionCriteria.timeWindow", DELETE),
    ("spec.patternDefinition.detectionCriteria.thresholds", {"directionChanges": "two"}),
    ("spec.preventionStrategy.strategy", "ban"),
    ("spec.preventionStrategy.parameters", {"cooldownPeriod": 30}),
    ("spec.preventionStrategy.alerting", {"severity": "high"}),
    ("status.statistics", {"falsePositiveRate": 2}),
])
def test_pattern_rejects(crds, path, value):
    with pytest.raises(jsonschema.ValidationError):
        validate(crds, "OscillationPattern", mutate(PATTERN, path, value))


def test_pattern_enforcement_defaults_to_enforce(crds):
    prop = schema_of(crds["OscillationPattern"])["properties"]["spec"]["properties"]["enforcementAction"]
    assert prop["enum"] == ["enforce", "warn", "dryrun"]
    assert prop["default"] == "enforce"


# --- single source ---------------------------------------------------------

SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".pytest_cache", ".hypothesis",
             ".safety-gate", "build", "dist", ".tox", ".mypy_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".yaml", ".yml", ".json", ".py", ".sh", ".tpl", ".txt", ".j2", ".jsonnet", ".cue"}
ALLOWED = {CHART / "crds" / name for name in CRD_FILES}


def repo_text_files():
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for f in files:
            path = Path(root) / f
            if path.suffix in TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
                yield path


def defines_our_crd(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    if "CustomResourceDefinition" not in text:
        return False
    if path.suffix in {".yaml", ".yml"}:
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            docs = []
        for doc in docs:
            items = doc.get("items", [doc]) if isinstance(doc, dict) else []
            for d in items:
                if (isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
                        and (d.get("spec") or {}).get("names", {}).get("kind") in OUR_KINDS):
                    return True
    # Embedded copies (Python/JSON/shell heredocs): a CRD with a schema for our kinds.
    return "openAPIV3Schema" in text and any(
        f"kind: {k}" in text or f'"kind": "{k}"' in text for k in OUR_KINDS)


def test_chart_crds_are_the_only_crd_source():
    """The e2e harness installs exactly charts/safety-gate/crds/; a second copy would drift."""
    me = Path(__file__).resolve()
    copies = sorted(str(p.relative_to(REPO)) for p in repo_text_files()
                    if p.resolve() != me and p not in ALLOWED and defines_our_crd(p))
    assert copies == [], f"safety-gate CRD copies outside charts/safety-gate/crds: {copies}"


def test_e2e_manifests_hold_only_third_party_crds():
    manifests = REPO / "e2e" / "manifests"
    if not manifests.is_dir():
        return
    for path in manifests.rglob("*"):
        if path.suffix not in {".yaml", ".yml"}:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                assert doc["spec"]["group"] != GROUP, f"{path}: our CRDs come from charts/safety-gate/crds only"


def test_single_source_detector_works(tmp_path):
    """Guard against a detector that never finds anything."""
    alert = tmp_path / "copy.yaml"
    alert.write_text((CHART / "crds" / "oscillationalerts.yaml").read_text())
    assert defines_our_crd(alert)
    embedded = tmp_path / "copy.py"
    embedded.write_text("CRD = '''\n" + (CHART / "crds" / "oscillationpatterns.yaml").read_text() + "'''\n")
    assert defines_our_crd(embedded)
    other = tmp_path / "tekton.yaml"
    other.write_text("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                     "metadata: {name: pipelineruns.tekton.dev}\nspec: {group: tekton.dev, names: {kind: PipelineRun}}\n")
    assert not defines_our_crd(other)
