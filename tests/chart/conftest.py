"""Fixtures for the Helm chart tests (helpers live in chart_helpers.py).

The tests shell out to a real `helm` v3 binary, found via `$HELM`,
`$HOME/.cache/safety-gate/bin/helm` or PATH. A missing helm FAILS the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chart_helpers import CHART, _helm_or_fail, render  # noqa: E402


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return _helm_or_fail()


@pytest.fixture(scope="session")
def default_docs(helm_bin) -> list[dict]:
    return render()


@pytest.fixture(scope="session")
def crds() -> dict[str, dict]:
    out = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert len(docs) == 1, f"{path} must hold exactly one CRD"
        out[docs[0]["spec"]["names"]["kind"]] = docs[0]
    return out
