"""The OscillationPattern CRD refuses exactly the thresholds the gate refuses: its CEL map of the keys
each patternType reads is the one in ``webhook/policy/validation.py``, for every registered pattern."""

from __future__ import annotations

import re

import yaml

from tests.chart.chart_helpers import CHART
from webhook.policy.model import PatternType
from webhook.policy.validation import THRESHOLDS

ENTRY = re.compile(r"'([a-z-]+)': \[([^\]]*)\]")


def crd_thresholds() -> dict[str, set[str]]:
    crd = yaml.safe_load((CHART / "crds" / "oscillationpatterns.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = schema["properties"]["spec"]["properties"]["patternDefinition"]["x-kubernetes-validations"]
    (rule,) = [r["rule"] for r in rules if "detectionCriteria.thresholds.all" in r["rule"]]
    return {name: {key.strip().strip("'") for key in keys.split(",") if key.strip()}
            for name, keys in ENTRY.findall(rule)}


def test_the_crd_knows_the_thresholds_of_every_pattern():
    assert crd_thresholds() == {pattern.value: set(THRESHOLDS.get(pattern, {})) for pattern in PatternType}


def test_its_message_names_every_pattern():
    crd = (CHART / "crds" / "oscillationpatterns.yaml").read_text()
    message = crd.split("holds a key this patternType does not read", 1)[1].split("properties:", 1)[0]
    for pattern in PatternType:
        assert f"{pattern.value}:" in message, pattern
