"""Fixtures and hooks of the kind suite; they live in kind_helpers.py (importable by the tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kind_helpers import (  # noqa: E402,F401
    kind_cluster,
    kind_toolchain,
    namespace,
    pytest_collection_modifyitems,
    pytest_runtest_teardown,
)
