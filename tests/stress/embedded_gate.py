"""A ``safety-gate serve`` process on its own embedded PostgreSQL and Redis, as a new user runs it.

No ``--postgres-dsn``/``--redis-url``: the gate starts both stores under its data dir, owns them
(``stores.json``) and supervises them. The data dir lives outside pytest's basetemp for the reason
given in ``tests/conftest.py`` (PostgreSQL runs as an unprivileged user that must traverse it).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from tests import reviews
from tests.gateproc import GateProcess
from tests.sql import fetch

#: Replica changes that only ever grow: always allowed, never an oscillation.
GROWING = [(n, n + 1) for n in range(1, 200)]


@contextlib.contextmanager
def embedded_gate(**kwargs: Any) -> Iterator[GateProcess]:
    scratch = Path(tempfile.mkdtemp(prefix="safety-gate-test-stress-"))
    gate = GateProcess(data_dir=scratch / "gate", **kwargs)
    try:
        gate.start(timeout=180)
        yield gate
    finally:
        gate.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def wait_until(predicate, *, timeout: float = 60.0, what: str) -> Any:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def owner(gate: GateProcess) -> dict[str, Any]:
    return json.loads((gate.data_dir / "stores.json").read_text())


def postgres_pid(gate: GateProcess) -> int | None:
    try:
        return int((gate.data_dir / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def redis_pid(gate: GateProcess) -> int | None:
    try:
        return int((gate.data_dir / "redis" / "redis.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def store_pids(gate: GateProcess) -> tuple[int | None, int | None]:
    return postgres_pid(gate), redis_pid(gate)


def readiness(gate: GateProcess) -> dict[str, Any]:
    reply = gate.client.get("/readyz")
    return {"status": reply.status_code, **reply.json()}


def fully_ready(gate: GateProcess) -> bool:
    state = readiness(gate)
    return state["status"] == 200 and state["degraded"] is False and set(state["stores"].values()) == {"up"}


def admit(gate: GateProcess, uids: list[str], steps: list[tuple[int, int]], *, name: str,
          namespace: str = "shop") -> None:
    """Admit ``steps`` on one target; each test gives its own ``namespace``, as one agent on five
    workloads of a namespace is a cascading failure."""
    for before, after in steps:
        body = reviews.scale(before=before, after=after, name=name, namespace=namespace)
        answer = gate.decide(body)
        assert answer["allowed"] is True, answer
        uids.append(body["request"]["uid"])


def traces_by_uid(dsn: str) -> dict[str, int]:
    rows = fetch(dsn, "SELECT request_uid, count(*) AS n FROM resource_action_traces GROUP BY request_uid")
    return {row["request_uid"]: row["n"] for row in rows}


def all_recorded(dsn: str, uids: list[str]) -> bool:
    try:
        return set(uids) <= traces_by_uid(dsn).keys()
    except OSError:
        return False


def reaped(pid: int) -> bool:
    """No unreaped zombie holds ``pid`` (a live process there reused it after ours was reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
