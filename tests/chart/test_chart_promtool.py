"""The PrometheusRule's alerts, unit-tested with Prometheus's own `promtool test rules`.

promtool is built from its Go module by e2e/kind/build-tools.sh (cached under
~/.cache/safety-gate/kind/bin); a missing Go toolchain FAILS these tests. The rules are the
chart's rendering (release `sg` in `gate-system`), the series and expected alerts are in
promtool/safety-gate-alerts.test.yaml.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from chart_helpers import REPO, one, render

TESTS = Path(__file__).resolve().parent / "promtool" / "safety-gate-alerts.test.yaml"

# The first test may build promtool from a cold Go cache (minutes on two shared cores).
pytestmark = pytest.mark.timeout(1800)


@functools.cache
def promtool() -> str:
    explicit = os.environ.get("PROMTOOL")
    if explicit:
        return explicit
    cache = Path(os.environ.get("SAFETY_GATE_KIND_CACHE", Path.home() / ".cache" / "safety-gate" / "kind"))
    build = subprocess.run(["bash", str(REPO / "e2e" / "kind" / "build-tools.sh"), "promtool"],
                           capture_output=True, text=True, timeout=1800)
    if build.returncode != 0:
        pytest.fail(f"could not build promtool (e2e/kind/build-tools.sh promtool):\n{build.stdout}\n{build.stderr}",
                    pytrace=False)
    return str(cache / "bin" / "promtool")


def rendered_rules(tmp_path: Path, *sets: str) -> Path:
    rule = one(render(sets=("metrics.prometheusRule.enabled=true", *sets)), "PrometheusRule")
    path = tmp_path / "safety-gate-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def test_rules_pass_promtool_check(helm_bin, tmp_path):
    res = run_promtool("check", "rules", str(rendered_rules(tmp_path)))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 7 rules found" in res.stdout, res.stdout


def test_alerts_fire_exactly_when_their_conditions_hold(helm_bin, tmp_path):
    rendered_rules(tmp_path)
    shutil.copy(TESTS, tmp_path / TESTS.name)
    res = run_promtool("test", "rules", str(tmp_path / TESTS.name))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_catches_a_wrong_expectation(helm_bin, tmp_path):
    """The harness can fail: the same tests against rules with a higher outbox threshold."""
    rendered_rules(tmp_path, "metrics.prometheusRule.outboxDepthThreshold=100")
    shutil.copy(TESTS, tmp_path / TESTS.name)
    res = run_promtool("test", "rules", str(tmp_path / TESTS.name))
    assert res.returncode != 0
    assert "SafetyGateOutboxBacklog" in res.stdout + res.stderr
