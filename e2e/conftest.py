"""Fixtures of the end-to-end suite: one real control plane per session.

Environment:
  SAFETY_GATE_E2E_BIN         binary cache (default ~/.cache/safety-gate/bin)
  SAFETY_GATE_E2E_SKIP_BUILD  1: never run build-binaries.sh, fail if binaries are missing
  SAFETY_GATE_E2E_CRD_DIR     CRDs to install instead of charts/safety-gate/crds
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

import pytest

# The suite's helpers live next to this file; make them importable whatever
# pytest import mode the project configures.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import (  # noqa: E402
    TEKTON_CRD,
    ControlPlane,
    binaries_up_to_date,
    default_bin_dir,
    ensure_binaries,
    project_crd_files,
)


@pytest.fixture(scope="session")
def control_plane_bin_dir() -> Path:
    """The binary cache, built by e2e/build-binaries.sh when missing or stale."""
    bin_dir = default_bin_dir()
    if os.environ.get("SAFETY_GATE_E2E_SKIP_BUILD") == "1":
        if not binaries_up_to_date(bin_dir):
            pytest.fail(f"{bin_dir} lacks the pinned binaries and SAFETY_GATE_E2E_SKIP_BUILD=1")
        return bin_dir
    return ensure_binaries(bin_dir)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, control_plane_bin_dir: Path):
    """A started :class:`ControlPlane` with the chart's CRDs and Tekton's PipelineRun CRD installed.

    ``cluster.installed_crds`` lists the CRD names. Logs and certificates are
    under ``cluster.work_dir`` (pytest's basetemp, kept for the last runs).
    """
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane"), bin_dir=control_plane_bin_dir)
    cp.start()
    try:
        cp.installed_crds = cp.install_crds([TEKTON_CRD, *project_crd_files()])
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(cluster: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test. Not deleted: without a
    controller-manager a deleted namespace never finishes terminating."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")
    name = f"{base[:50].rstrip('-')}-{uuid.uuid4().hex[:6]}"
    return cluster.create_namespace(name)
