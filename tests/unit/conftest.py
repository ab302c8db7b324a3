"""The unit tier starts no store server: it must run in seconds on a machine without PostgreSQL.

The suite-wide fixtures that start PostgreSQL are shadowed here, so a unit test that asks for one
fails at setup with the reason instead of quietly starting a server; such a test belongs in
``tests/integration``.
"""

from __future__ import annotations

import pytest

_MOVE = "the unit tier starts no PostgreSQL: move this test to tests/integration"


@pytest.fixture(scope="session")
def postgres_server():
    pytest.fail(_MOVE)


@pytest.fixture
def embedded_postgres_factory():
    pytest.fail(_MOVE)
