"""Every OscillationPattern the user guide shows loads as it is written: an example that the
validation refuses would teach a mistake."""

from __future__ import annotations

import pathlib
import re

import yaml

from webhook.policy import load_policy_text

GUIDE = pathlib.Path(__file__).resolve().parents[3] / "docs" / "user-guide.md"
BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def test_the_user_guides_policies_are_valid():
    examples = [block for block in BLOCK.findall(GUIDE.read_text()) if "kind: OscillationPattern" in block]
    assert len(examples) >= 6
    for block in examples:
        documents = [d for d in yaml.safe_load_all(block) if isinstance(d, dict)]
        patterns = [d for d in documents if d.get("kind") == "OscillationPattern"]
        for policy in load_policy_text(yaml.safe_dump_all(patterns), origin="user-guide"):
            assert policy.window.total_seconds() > 0


CHART_VALUES = pathlib.Path(__file__).resolve().parents[2] / "chart" / "values"


def test_the_chart_fixtures_policies_are_valid():
    checked = 0
    for path in sorted(CHART_VALUES.glob("*.yaml")):
        if path.name.startswith("invalid-"):  # the chart's own refusal tests
            continue
        values = yaml.safe_load(path.read_text()) or {}
        text = values.get("policyFile")
        if isinstance(text, str):
            checked += len(load_policy_text(text, origin=str(path)))
        for entry in values.get("policies") or []:
            doc = {"apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "OscillationPattern",
                   "metadata": {"name": entry["name"]}, "spec": entry["spec"]}
            checked += len(load_policy_text(yaml.safe_dump(doc), origin=f"{path}: {entry['name']}"))
    assert checked >= 3
