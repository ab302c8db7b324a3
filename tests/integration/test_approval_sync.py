"""ApprovalSync against a real PostgreSQL: only a NEW approval (later approvedAt) re-arms it.

The sync is driven with OscillationAlert objects as the API server returns them; its Kubernetes
client is never called here (every object carries ``approvedAt``).
"""

from __future__ import annotations

import datetime

import kubernetes.client
import pytest

from tests.unit.detection.factories import NOW, minutes
from tests.unit.kube.test_alerts import update
from webhook.decision.decide import Phase
from webhook.kube.alerts import rfc3339
from webhook.kube.approvals import ApprovalSync
from webhook.kube.client import KubeClient
from webhook.policy.model import PatternType, Strategy
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool

ALERT = "shop/deployment-cart-ineffective-loop"


def alert_object(approved_at: datetime.datetime | None, *, by: str = "oncall") -> dict:
    approval = {"approvedBy": by, "reason": "fixed the config"}
    if approved_at is not None:
        approval["approvedAt"] = rfc3339(approved_at)
    return {"apiVersion": "ai.prometheus-alerts-slm.io/v1", "kind": "OscillationAlert",
            "metadata": {"name": "deployment-cart-ineffective-loop", "namespace": "shop", "resourceVersion": "9"},
            "spec": {"patternType": "ineffective-loop", "approval": approval}}


@pytest.fixture
async def postgres(fresh_database: str):
    await migrate(fresh_database)
    pool = await create_pool(fresh_database, max_size=2)
    store = PostgresStore(pool, cluster_id="c1")
    yield store
    await pool.close()


@pytest.fixture
def sync(postgres: PostgresStore) -> ApprovalSync:
    client = KubeClient(kubernetes.client.ApiClient(kubernetes.client.Configuration()))
    yield ApprovalSync(client, postgres=postgres, clock=lambda: NOW)
    client.close()


async def test_a_new_approval_is_copied_once_and_a_replay_never_rearms_it(postgres: PostgresStore,
                                                                          sync: ApprovalSync):
    escalation = update(name="deployment-cart-ineffective-loop", pattern=PatternType.INEFFECTIVE_LOOP,
                        strategy=Strategy.ESCALATE_HUMAN, phase=Phase.PENDING_APPROVAL, cooldown_until=None)
    async with postgres.pool.acquire() as connection:  # what the engine writes with an escalation
        await postgres._upsert_detection(connection, escalation, now=minutes(-5))
    assert await sync.consider(alert_object(minutes(-1))) is True
    [approval] = await postgres.approvals([ALERT])
    assert approval.approved_by == "oncall" and approval.approved_at == minutes(-1) and approval.used_at is None

    async with postgres.pool.acquire() as connection:  # the approved action passed
        await postgres._consume_approval(connection, ALERT, request_uid="r1", at=NOW)
    # The same object again (a relist, a restarted gate): already synced, stays used.
    assert await sync.consider(alert_object(minutes(-1))) is False
    fresh = ApprovalSync(sync.client, postgres=postgres)  # a new replica with an empty memory
    assert await fresh.consider(alert_object(minutes(-1))) is False
    [approval] = await postgres.approvals([ALERT])
    assert approval.used_at == NOW

    # A new approval (later approvedAt) re-arms it.
    assert await fresh.consider(alert_object(minutes(1), by="lead")) is True
    [approval] = await postgres.approvals([ALERT])
    assert approval.approved_by == "lead" and approval.used_at is None


async def test_an_approval_without_a_detection_is_not_invented(postgres: PostgresStore, sync: ApprovalSync):
    assert await sync.consider(alert_object(minutes(-1))) is False
    assert await postgres.approvals([ALERT]) == []


async def test_an_alert_without_approval_is_ignored(sync: ApprovalSync):
    obj = alert_object(None)
    del obj["spec"]["approval"]
    assert await sync.consider(obj) is False


async def test_the_store_itself_never_rearms_with_an_approval_that_is_not_newer(postgres: PostgresStore):
    """Two replicas syncing the same approval race past any in-memory check; the UPDATE decides."""
    escalation = update(name="deployment-cart-ineffective-loop", pattern=PatternType.INEFFECTIVE_LOOP,
                        strategy=Strategy.ESCALATE_HUMAN, phase=Phase.PENDING_APPROVAL, cooldown_until=None)
    async with postgres.pool.acquire() as connection:
        await postgres._upsert_detection(connection, escalation, now=minutes(-5))
    assert await postgres.approve(ALERT, approved_by="oncall", reason="r", at=minutes(-1)) is True
    async with postgres.pool.acquire() as connection:
        await postgres._consume_approval(connection, ALERT, request_uid="r1", at=NOW)
    assert await postgres.approve(ALERT, approved_by="oncall", reason="r", at=minutes(-1)) is False
    assert await postgres.approve(ALERT, approved_by="oncall", reason="r", at=minutes(-2)) is False
    [approval] = await postgres.approvals([ALERT])
    assert approval.used_at == NOW
