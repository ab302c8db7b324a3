"""``serve --policy`` with a policy that parses but holds values the gate cannot use: exit 2 before
anything starts, naming the file, the document and every field (it used to start, and then every
review the policy reached failed open — or, with failClosed, refused everything, the HPA included)."""

from __future__ import annotations

import os
import subprocess
import sys

GOOD = """apiVersion: ai.prometheus-alerts-slm.io/v1
kind: OscillationPattern
metadata: {name: fight}
spec:
  patternDefinition:
    patternType: controller-fight
    detectionCriteria: {minOccurrences: 2, timeWindow: 1h}
  preventionStrategy: {strategy: block-action, parameters: {blockDuration: 30m}}
"""
BAD = """apiVersion: ai.prometheus-alerts-slm.io/v1
kind: OscillationPattern
metadata: {name: slow-scale}
spec:
  patternDefinition:
    patternType: scale-oscillation
    detectionCriteria: {minOccurrences: 3, timeWindow: 999999d}
  preventionStrategy:
    strategy: cooling-period
    parameters: {cooldownPeriod: 30m, escalateWindow: "1 day"}
"""


def test_serve_refuses_out_of_range_values_naming_document_and_fields(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD + "---\n" + BAD)
    for extra in ([], ["--fail-closed"]):
        result = subprocess.run([sys.executable, "-m", "webhook", "serve", "--policy", str(policy),
                                 "--data-dir", str(tmp_path / "data"), *extra],
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "COLUMNS": "2000"})  # one line: paths unbroken
        assert result.returncode == 2, result.stderr
        message = " ".join(result.stdout.split() + result.stderr.split())
        assert f"{policy}: document 2, OscillationPattern slow-scale:" in message
        assert "spec.patternDefinition.detectionCriteria.timeWindow: '999999d' is out of range" in message
        assert "spec.preventionStrategy.parameters.escalateWindow: invalid duration '1 day'" in message
        assert not (tmp_path / "data" / "postgres").exists()  # nothing was started
