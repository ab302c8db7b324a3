"""Every kind of restriction is kept by PostgreSQL: the ``restrictions.applies`` check lists every
``Applies`` value, and a node's cooling period holds against the next cordon from the store.

Before migration 0008 the check knew only ``replicas`` and ``all``: the decision that started a
schedulability-oscillation cooling period was refused by PostgreSQL and went to the dead letters."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import pytest

from tests.stress.stores_helpers import gate_on, request_of, store_stack
from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.decision.state import ActorScope, Applies, Restriction, TargetScope
from webhook.detection.situation import Reach
from webhook.policy.model import PatternType, Strategy
from webhook.store.effects import Effects

AGENT = "system:serviceaccount:ops:agent"
NODE = TargetRef(namespace="", kind="Node", name="worker-1", api_version="v1")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(params=["redis", "postgres-only"])
async def history(request, fresh_database, fresh_redis_url, tmp_path):
    url = fresh_redis_url if request.param == "redis" else None
    async with store_stack(dsn=fresh_database, redis_url=url, spool=tmp_path / "spool") as history:
        yield history


def refusal(restriction: Restriction, *, at: datetime.datetime) -> Effects:
    event = ActionEvent(uid=str(uuid.uuid4()), at=at, target=NODE, action_type="drain_node", actor=AGENT,
                        actor_class=ActorClass.AUTOMATION)
    return Effects(uid=event.uid, decided_at=at, event=event, record=False, outcome="deny", allowed=False, code=429,
                   pattern=restriction.pattern.value, strategy=restriction.strategy.value, message="refused",
                   warnings=(), latency_ms=1.0, restriction=restriction)


async def test_a_restriction_of_every_kind_and_scope_is_stored_and_read_back(history):
    at = now()
    base = Restriction(pattern=PatternType.SCHEDULABILITY_OSCILLATION, strategy=Strategy.COOLING_PERIOD,
                       scope=TargetScope.of(NODE), applies=Applies.SCHEDULABILITY, started=at,
                       until=at + datetime.timedelta(minutes=30), alert="safety-gate/node-worker-1-x",
                       evidence="2 direction reversals", target_key=NODE.key)
    # Distinct starts: restrictions alike in scope, pattern and period are one restriction to the store.
    stored = [dataclasses.replace(base, applies=applies, alert=f"safety-gate/{applies.value}",
                                  started=at - datetime.timedelta(seconds=index))
              for index, applies in enumerate(Applies)]
    stored.append(dataclasses.replace(base, scope=ActorScope(AGENT, Reach.CLUSTER), applies=Applies.ALL,
                                      pattern=PatternType.CASCADING_FAILURE, strategy=Strategy.BLOCK_ACTION,
                                      alert="safety-gate/agent-cluster"))
    for restriction in stored:
        assert await history.remember(refusal(restriction, at=at), now=at) == "postgres"
    assert await history.postgres.pool.fetchval("SELECT count(*) FROM dead_letters") == 0
    found = await history.restrictions(scopes=[TargetScope.of(NODE), ActorScope(AGENT, Reach.CLUSTER)],
                                       actor=None, now=at)
    assert sorted(found, key=lambda r: r.alert) == sorted(stored, key=lambda r: r.alert)


def flip(before: bool | None, after: bool) -> dict:
    def node(unschedulable: bool | None) -> dict:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE.name},
                "spec": {} if unschedulable is None else {"unschedulable": unschedulable}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Node"},
        "resource": {"group": "", "version": "v1", "resource": "nodes"}, "name": NODE.name,
        "operation": "UPDATE", "userInfo": {"username": AGENT, "groups": ["system:serviceaccounts"]},
        "object": node(after), "oldObject": node(before)}}


async def test_a_nodes_cooling_period_is_kept_and_refuses_the_next_change(history):
    gate = gate_on(history)
    answers = [await gate.review(request_of(body)) for body in (flip(None, True), flip(True, False),
                                                                 flip(False, True))]
    assert [a.decision.allowed for a in answers] == [True, True, False]
    assert answers[2].decision.restriction.applies is Applies.SCHEDULABILITY
    rows = await history.postgres.pool.fetch("SELECT scope, applies FROM restrictions")
    assert [(r["scope"], r["applies"]) for r in rows] == [("target//Node/worker-1", "schedulability")]
    assert await history.postgres.pool.fetchval("SELECT count(*) FROM dead_letters") == 0
    again = await gate.review(request_of(flip(False, True)))
    assert again.decision.allowed is False and again.decision.refused_by is not None
    assert "cooling period until" in again.decision.message
