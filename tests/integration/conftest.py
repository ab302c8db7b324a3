from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.gateproc import GateProcess


@pytest.fixture
def gate_factory(tmp_path: pathlib.Path, fresh_database: str, fresh_redis_url: str) -> Iterator:
    """Start gates on one fresh database and Redis; all are stopped at teardown."""
    started: list[GateProcess] = []

    def start(*, name: str = "gate", **kwargs) -> GateProcess:
        kwargs.setdefault("postgres_dsn", fresh_database)
        kwargs.setdefault("redis_url", fresh_redis_url)
        gate = GateProcess(data_dir=tmp_path / name, **kwargs)
        started.append(gate)
        return gate.start()

    yield start
    for gate in started:
        gate.stop()


@pytest.fixture
def gate(gate_factory) -> GateProcess:
    return gate_factory()
