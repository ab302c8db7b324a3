"""Probe of the suite fixtures' external-server path (see ``test_fixtures_use_external_servers_from_env``)."""

from __future__ import annotations

import os

import pytest

from webhook.store.embedded import ExternalPostgres, ExternalRedis


def test_probe_external_servers(request: pytest.FixtureRequest) -> None:
    """Run by test_embedded.py's external-servers test in a pytest subprocess with TEST_* set.

    The file name does not match ``test_*.py``, so a normal run never collects it.
    """
    pg = request.getfixturevalue("postgres_server")
    cache = request.getfixturevalue("redis_server")
    assert pg == ExternalPostgres(dsn=os.environ["TEST_POSTGRES_DSN"])
    assert cache == ExternalRedis(url=os.environ["TEST_REDIS_URL"])
    assert request.getfixturevalue("postgres_dsn") == os.environ["TEST_POSTGRES_DSN"]
    fresh = request.getfixturevalue("fresh_database")
    assert fresh.startswith(os.environ["TEST_POSTGRES_DSN"].rsplit("/", 1)[0] + "/sg_")
