"""``kill -9`` of the embedded PostgreSQL and of the embedded Redis under a running ``safety-gate serve``.

The gate reaps the dead store (no zombie), restarts it on the same port within seconds, ``/readyz``
recovers, and every action admitted before, during and after the outage is in PostgreSQL exactly once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import asyncpg
import pytest

from tests.gateproc import GateProcess
from tests.stress.embedded_gate import (
    GROWING,
    admit,
    all_recorded,
    embedded_gate,
    fully_ready,
    owner,
    postgres_pid,
    readiness,
    reaped,
    redis_pid,
    traces_by_uid,
    wait_until,
)

#: "Within seconds": crash recovery of a small PostgreSQL plus the supervisor's first (immediate) restart.
RESTART_DEADLINE = 30.0


@pytest.fixture(scope="module")
def gate() -> Iterator[GateProcess]:
    with embedded_gate() as process:
        yield process


def test_kill_9_of_the_embedded_postgres(gate: GateProcess) -> None:
    dsn = owner(gate)["postgres_dsn"]
    assert owner(gate)["pid"] == gate.process.pid
    uids: list[str] = []
    admit(gate, uids, GROWING[:5], name="pg-chaos", namespace="pg-chaos")
    wait_until(lambda: all_recorded(dsn, uids), what="the first actions recorded")

    first = postgres_pid(gate)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    admit(gate, uids, GROWING[5:25], name="pg-chaos", namespace="pg-chaos")  # decided while PostgreSQL is dead or recovering

    wait_until(lambda: postgres_pid(gate) not in (None, first), timeout=RESTART_DEADLINE,
               what="a new postmaster")
    wait_until(lambda: fully_ready(gate), timeout=RESTART_DEADLINE, what="/readyz with both stores up")
    admit(gate, uids, GROWING[25:30], name="pg-chaos", namespace="pg-chaos")
    wait_until(lambda: all_recorded(dsn, uids), timeout=RESTART_DEADLINE, what="every admitted action recorded")
    counts = traces_by_uid(dsn)
    assert [counts[uid] for uid in uids] == [1] * len(uids)
    assert reaped(first), "the killed postmaster was left a zombie"
    log = gate.log_path.read_text()
    assert f"EmbeddedPostgres (pid {first}) died" in log and "restarted EmbeddedPostgres" in log
    assert owner(gate)["postgres_dsn"] == dsn  # same port: clients keep their DSN
    assert gate.process.poll() is None


def test_kill_9_of_the_embedded_redis(gate: GateProcess) -> None:
    dsn = owner(gate)["postgres_dsn"]
    uids: list[str] = []
    admit(gate, uids, GROWING[:5], name="redis-chaos", namespace="redis-chaos")
    first = redis_pid(gate)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    admit(gate, uids, GROWING[5:25], name="redis-chaos", namespace="redis-chaos")

    wait_until(lambda: redis_pid(gate) not in (None, first), timeout=RESTART_DEADLINE, what="a new redis-server")
    wait_until(lambda: fully_ready(gate), timeout=RESTART_DEADLINE, what="/readyz with both stores up")
    admit(gate, uids, GROWING[25:30], name="redis-chaos", namespace="redis-chaos")
    wait_until(lambda: all_recorded(dsn, uids), timeout=RESTART_DEADLINE, what="every admitted action recorded")
    counts = traces_by_uid(dsn)
    assert [counts[uid] for uid in uids] == [1] * len(uids)
    assert reaped(first), "the killed redis-server was left a zombie"
    log = gate.log_path.read_text()
    assert f"EmbeddedRedis (pid {first}) died" in log and "restarted EmbeddedRedis" in log
    assert gate.process.poll() is None


def test_kill_9_of_both_stores_at_once(gate: GateProcess) -> None:
    """Both gone together: admitted actions wait in the local spool or the new Redis, and land once."""
    dsn = owner(gate)["postgres_dsn"]
    uids: list[str] = []
    admit(gate, uids, GROWING[:3], name="both-chaos", namespace="both-chaos")
    pg, cache = postgres_pid(gate), redis_pid(gate)
    assert pg is not None and cache is not None
    os.kill(pg, signal.SIGKILL)
    os.kill(cache, signal.SIGKILL)
    admit(gate, uids, GROWING[3:20], name="both-chaos", namespace="both-chaos")

    wait_until(lambda: postgres_pid(gate) not in (None, pg) and redis_pid(gate) not in (None, cache),
               timeout=RESTART_DEADLINE, what="both stores restarted")
    wait_until(lambda: fully_ready(gate), timeout=RESTART_DEADLINE, what="/readyz with both stores up")
    wait_until(lambda: all_recorded(dsn, uids), timeout=RESTART_DEADLINE, what="every admitted action recorded")
    counts = traces_by_uid(dsn)
    assert [counts[uid] for uid in uids] == [1] * len(uids)
    assert reaped(pg) and reaped(cache)


async def test_both_killed_in_turn_and_the_gate_still_stops_cleanly(gate: GateProcess) -> None:
    """After the restarts above, decisions still use both stores, and SIGTERM stops them with the gate."""
    assert readiness(gate)["status"] == 200
    pg, cache = postgres_pid(gate), redis_pid(gate)
    dsn = owner(gate)["postgres_dsn"]
    connection = await asyncpg.connect(dsn)
    assert await connection.fetchval("SELECT 1") == 1
    await connection.close()
    gate.stop()
    assert gate.process is None
    assert reaped(pg) and reaped(cache)
    for pid in (pg, cache):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (gate.data_dir / "stores.json").exists()
