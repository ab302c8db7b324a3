"""Policies are judged whole at load: every threshold and parameter the gate reads is parsed and
range-checked, so a policy that loads can never break a review later."""

from __future__ import annotations

import copy
import datetime
import math
from typing import Any

import pytest
import yaml

from webhook.policy import PolicyError, default_policies, load_policy_text
from webhook.policy.defaults import DEFAULT_DOCUMENTS
from webhook.policy.model import OscillationPattern, PatternType
from webhook.policy.resolved import PatternPolicy
from webhook.policy.validation import (
    MAX_DURATION,
    PARAMETERS,
    THRESHOLDS,
    PolicyInvalid,
    ValueKind,
    problems_of,
)

SCALE: dict[str, Any] = {
    "apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "OscillationPattern",
    "metadata": {"name": "shop-scale"},
    "spec": {
        "patternDefinition": {"patternType": "scale-oscillation",
                              "detectionCriteria": {"minOccurrences": 3, "timeWindow": "2h",
                                                    "thresholds": {"directionChanges": 2}}},
        "preventionStrategy": {"strategy": "cooling-period",
                               "parameters": {"cooldownPeriod": "30m", "escalateWindow": "24h"}},
    },
}


def changed(path: str, value: Any, doc: dict[str, Any] = SCALE) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def problems(doc: dict[str, Any]) -> dict[str, str]:
    return {p.field: p.message for p in problems_of(OscillationPattern.model_validate(doc))}


def test_the_defaults_and_the_documented_examples_are_valid():
    for doc in DEFAULT_DOCUMENTS:
        assert problems(doc) == {}, doc["metadata"]["name"]
    assert len(default_policies()) == len(PatternType)  # one default per pattern
    assert problems(SCALE) == {}


@pytest.mark.parametrize("path, value, words", [
    # the two reported: both loaded fine, then every review failed
    ("spec.preventionStrategy.parameters.escalateWindow", "1 day", "invalid duration '1 day'"),
    ("spec.patternDefinition.detectionCriteria.timeWindow", "999999d", "out of range"),
    ("spec.patternDefinition.detectionCriteria.timeWindow", "401d", "from 1s to 400d"),
    ("spec.patternDefinition.detectionCriteria.timeWindow", "0s", "out of range"),
    ("spec.preventionStrategy.parameters.cooldownPeriod", "0m", "out of range"),
    ("spec.preventionStrategy.parameters.cooldownPeriod", "30 minutes", "invalid duration"),
    ("spec.preventionStrategy.parameters.blockDuration", "10000h", "out of range"),
    ("spec.preventionStrategy.parameters.approvalValidity", "-1h", "invalid duration"),
    ("spec.preventionStrategy.parameters.escalateAfter", "three", "whole number"),
    ("spec.preventionStrategy.parameters.escalateAfter", "0", "from 1 to"),
    ("spec.preventionStrategy.parameters.escalateAfter", "1.5", "whole number"),
    ("spec.preventionStrategy.parameters.escalateAfter", "99999999999999999999", "from 1 to"),
    ("spec.preventionStrategy.parameters.cooldownperiod", "30m", "no strategy reads such a parameter"),
    ("spec.patternDefinition.detectionCriteria.thresholds.directionChanges", 0, "count from 1"),
    ("spec.patternDefinition.detectionCriteria.thresholds.directionChanges", 1e12, "count from 1"),
    ("spec.patternDefinition.detectionCriteria.thresholds.directionChanges", math.inf, "finite"),
    ("spec.patternDefinition.detectionCriteria.thresholds.highReversals", math.nan, "finite"),
    ("spec.patternDefinition.detectionCriteria.thresholds.criticalWindowMinutes", 0, "more than 0"),
    ("spec.patternDefinition.detectionCriteria.thresholds.criticalWindowMinutes", 1e9, "at most 576000"),
    ("spec.patternDefinition.detectionCriteria.thresholds.effectivenessThreshold", 0.3, "reads no such threshold"),
    ("spec.patternDefinition.detectionCriteria.minOccurrences", 10**9, "at most 10000"),
])
def test_each_unusable_value_is_named_by_its_field(path, value, words):
    found = problems(changed(path, value))
    assert list(found) == [path]
    assert words in found[path]


def test_every_threshold_a_pattern_reads_has_a_range():
    fractions = {"effectivenessThreshold"}
    for pattern, known in THRESHOLDS.items():
        for key, kind in known.items():
            doc = changed("spec.patternDefinition.patternType", pattern.value)
            base = "spec.patternDefinition.detectionCriteria.thresholds"
            assert problems(changed(f"{base}.{key}", -1, doc)), (pattern, key)
            good = 0.5 if key in fractions else 2
            assert problems(changed(base, {key: good}, doc)) == {}, (pattern, key)
            assert (kind is ValueKind.FRACTION) == (key in fractions)
    assert set(PARAMETERS) == {"cooldownPeriod", "escalateAfter", "escalateWindow", "blockDuration",
                               "approvalValidity"}


def test_an_invalid_document_never_becomes_a_policy():
    doc = OscillationPattern.model_validate(changed("spec.preventionStrategy.parameters.escalateWindow", "1 day"))
    with pytest.raises(PolicyInvalid) as error:
        PatternPolicy.from_document(doc, source="cluster")
    assert [p.field for p in error.value.problems] == ["spec.preventionStrategy.parameters.escalateWindow"]


def test_within_range_durations_are_read_back_exactly():
    doc = changed("spec.patternDefinition.detectionCriteria.timeWindow", "400d")
    doc = changed("spec.preventionStrategy.parameters", {"cooldownPeriod": "1s", "escalateAfter": "5",
                                                          "escalateWindow": "400d"}, doc)
    policy = PatternPolicy.from_document(OscillationPattern.model_validate(doc), source="file")
    assert policy.window == MAX_DURATION
    assert policy.duration("cooldownPeriod", "30m") == datetime.timedelta(seconds=1)
    assert policy.integer("escalateAfter", 3) == 5


def stream(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs)


def test_a_file_error_names_the_file_the_document_and_every_field():
    bad = changed("spec.preventionStrategy.parameters.escalateWindow", "1 day")
    bad = changed("spec.patternDefinition.detectionCriteria.timeWindow", "999999d", bad)
    bad = changed("metadata.name", "too-long", bad)
    with pytest.raises(PolicyError) as error:
        load_policy_text(stream(SCALE, bad), origin="policy.yaml")
    text = str(error.value)
    assert text.startswith("policy.yaml: document 2, OscillationPattern too-long: ")
    assert "spec.preventionStrategy.parameters.escalateWindow: invalid duration '1 day'" in text
    assert "spec.patternDefinition.detectionCriteria.timeWindow: '999999d' is out of range" in text


def test_a_list_item_and_an_unnamed_document_are_located_too():
    listed = {"apiVersion": "v1", "kind": "List",
              "items": [SCALE, changed("spec.preventionStrategy.parameters.blockDuration", "1y")]}
    with pytest.raises(PolicyError, match=r"document 1 item 2, OscillationPattern shop-scale: "
                                          r"spec\.preventionStrategy\.parameters\.blockDuration"):
        load_policy_text(stream(listed))
    unnamed = copy.deepcopy(SCALE)
    del unnamed["metadata"]
    with pytest.raises(PolicyError, match=r"policy: document 3: metadata: Field required"):
        load_policy_text(stream(SCALE, SCALE, unnamed))


def test_empty_documents_keep_the_numbering_of_the_file():
    text = stream(SCALE) + "---\n---\n" + stream(changed("spec.preventionStrategy.parameters.x", "1"))
    with pytest.raises(PolicyError, match="document 3, "):  # the second document is empty
        load_policy_text(text)


def test_a_duration_too_large_for_any_clock_is_a_usage_error_not_a_crash():
    huge = changed("spec.patternDefinition.detectionCriteria.timeWindow", "9" * 40 + "d")
    with pytest.raises(PolicyError, match=r"timeWindow: .*far too long"):
        load_policy_text(stream(huge))


def test_pattern_types_cover_every_detector():
    assert set(THRESHOLDS) == set(PatternType)
