"""When the gate itself fails (a bug, a broken policy provider, a failing observer), the request is
answered unchecked — and what that answer admits is still history, recorded exactly once
(DESIGN §7: an admitted action is never lost)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests import reviews
from tests.stress.stores_helpers import gate_on, store_stack
from webhook.engine.gate import Gate
from webhook.server import validate
from webhook.server.overload import Slots
from webhook.settings import Settings
from webhook.store.history import HistoryStore


def broken_policies() -> Any:
    raise RuntimeError("the policy provider broke")


def app_for(gate: Gate, *, fail_closed: bool = False) -> Starlette:
    app = Starlette(routes=[Route("/validate", validate.validate, methods=["POST"])])
    app.state.settings = settings = Settings(fail_closed=fail_closed)
    app.state.gate = gate
    app.state.slots = Slots(limit=settings.max_in_flight, per_actor=settings.max_in_flight_per_actor)
    return app


@pytest.fixture
async def history(fresh_database: str, fresh_redis_url: str, tmp_path) -> AsyncIterator[HistoryStore]:
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool") as history:
        yield history


async def post(gate: Gate, body: dict, *, fail_closed: bool = False) -> dict:
    transport = httpx.ASGITransport(app=app_for(gate, fail_closed=fail_closed))
    async with httpx.AsyncClient(transport=transport, base_url="https://gate") as client:
        res = await client.post("/validate", json=body)
    assert res.status_code == 200, res.text
    return res.json()["response"]


async def rows(dsn: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(query)
    finally:
        await connection.close()


async def test_a_change_admitted_after_a_gate_failure_is_recorded(history, fresh_database):
    gate = gate_on(history)
    gate.policies = broken_policies
    answer = await post(gate, reviews.scale(before=3, after=4, uid="broken-1"))
    assert answer["allowed"] is True
    assert any("allowed unchecked" in warning for warning in answer["warnings"])
    decided = await rows(fresh_database, "SELECT request_uid, outcome, degraded FROM admission_decisions")
    assert [(r["request_uid"], r["outcome"], r["degraded"]) for r in decided] == [("broken-1", "fail-open",
                                                                                  "gate-error")]
    actions = await rows(fresh_database, "SELECT request_uid, action_type FROM resource_action_traces")
    assert [(r["request_uid"], r["action_type"]) for r in actions] == [("broken-1", "scale_deployment")]


async def test_a_failure_after_the_decision_was_written_records_nothing_twice(history, fresh_database):
    gate = gate_on(history)

    def failing_observer(result: Any) -> None:
        raise RuntimeError("an observer broke")

    gate.on_decision = failing_observer
    answer = await post(gate, reviews.scale(before=3, after=4, uid="observer-1"))
    assert answer["allowed"] is True
    decided = await rows(fresh_database, "SELECT request_uid, outcome FROM admission_decisions")
    assert [(r["request_uid"], r["outcome"]) for r in decided] == [("observer-1", "allow")]
    actions = await rows(fresh_database, "SELECT count(*) AS n FROM resource_action_traces")
    assert actions[0]["n"] == 1


async def test_fail_closed_refuses_automation_and_records_no_action(history, fresh_database):
    gate = Gate(history=history, policies=broken_policies, rules=Settings().actor_rules(), fail_closed=True)
    answer = await post(gate, reviews.scale(before=3, after=4, uid="closed-1"), fail_closed=True)
    assert answer["allowed"] is False and answer["status"]["code"] == 503
    decided = await rows(fresh_database, "SELECT outcome, degraded FROM admission_decisions")
    assert [(r["outcome"], r["degraded"]) for r in decided] == [("fail-closed", "gate-error")]
    actions = await rows(fresh_database, "SELECT count(*) AS n FROM resource_action_traces")
    assert actions[0]["n"] == 0


async def test_fail_closed_never_refuses_a_person_blind_and_records_what_it_admits(history, fresh_database):
    gate = Gate(history=history, policies=broken_policies, rules=Settings().actor_rules(), fail_closed=True)
    answer = await post(gate, reviews.scale(before=3, after=4, uid="person-1", user="alice@example.com"),
                        fail_closed=True)
    assert answer["allowed"] is True
    decided = await rows(fresh_database, "SELECT outcome, degraded FROM admission_decisions")
    assert [(r["outcome"], r["degraded"]) for r in decided] == [("fail-open", "gate-error")]
    actions = await rows(fresh_database, "SELECT count(*) AS n FROM resource_action_traces")
    assert actions[0]["n"] == 1


async def test_the_answer_stands_when_the_record_cannot_be_written(history):
    gate = gate_on(history)
    gate.policies = broken_policies
    await history.postgres.pool.close()  # PostgreSQL unreachable for this gate, and no outbox write either
    history.outbox = None
    answer = await post(gate, reviews.scale(before=3, after=4, uid="lost-1"))
    assert answer["allowed"] is True


