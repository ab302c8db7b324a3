"""Which targets changed, as the summariser reads it from a real PostgreSQL: every kind of change
is seen once, in order, however the pages fall, and the facts of a summary come back whole."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator

import pytest

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool
from webhook.store.summaries import Cursor, SummaryRepository

AGENT = "system:serviceaccount:ops:agent"
T0 = datetime.datetime(2026, 11, 10, 12, 0, tzinfo=datetime.timezone.utc)


def minutes(n: float) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=n)


def target(name: str) -> TargetRef:
    return TargetRef(namespace="shop", kind="Deployment", name=name, api_version="apps/v1")


@pytest.fixture
async def stores(fresh_database: str) -> AsyncIterator[tuple[PostgresStore, SummaryRepository]]:
    await migrate(fresh_database)
    pool = await create_pool(fresh_database, max_size=4)
    try:
        yield PostgresStore(pool, cluster_id="c1"), SummaryRepository(pool, cluster_id="c1")
    finally:
        await pool.close()


async def record(store: PostgresStore, on: TargetRef, at: datetime.datetime, action_type: str = "scale") -> int:
    event = ActionEvent(uid=uuid.uuid4().hex, at=at, target=on, action_type=action_type, actor=AGENT,
                        actor_class=ActorClass.AUTOMATION)
    action_id = await store.record_action(event)
    # updated_at is PostgreSQL's clock; pin it to the action time so the test controls the order.
    await store.pool.execute(
        "UPDATE action_histories h SET updated_at = $1 FROM resource_references r"
        " WHERE r.id = h.resource_id AND r.name = $2", at, on.name)
    return action_id


async def visit_all(repository: SummaryRepository, *, start: Cursor, until: datetime.datetime,
                    limit: int) -> list[tuple[str, datetime.datetime]]:
    """Page through the changes the way the summariser does; return (target name, time) in order."""
    seen, cursor = [], start
    while True:
        page = await repository.changed(after=cursor, until=until, limit=limit)
        seen += [(change.target.name, change.at) for change in page]
        if len(page) < limit:
            return seen
        cursor = page[-1].cursor


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
async def test_ties_are_visited_once_whatever_the_page_size(stores, limit):
    store, repository = stores
    for name in ("e", "a", "d", "b", "c"):  # all at the same instant
        await record(store, target(name), minutes(1))
    await record(store, target("z"), minutes(0))
    await record(store, target("y"), minutes(2))
    seen = await visit_all(repository, start=Cursor(at=minutes(-1)), until=minutes(60), limit=limit)
    assert [name for name, _ in seen] == ["z", "a", "b", "c", "d", "e", "y"]


async def test_every_kind_of_change_is_one(stores):
    store, repository = stores
    action = await record(store, target("acted"), minutes(0))
    await record(store, target("assessed"), minutes(-300))
    await store.pool.execute(
        "UPDATE resource_action_traces SET effectiveness_score = 0.5, effectiveness_assessed_at = $1"
        " WHERE namespace = 'shop' AND name = 'assessed'", minutes(5))
    await record(store, target("cooled"), minutes(-300))
    await store.pool.execute(
        "INSERT INTO restrictions (cluster_id, scope, pattern, strategy, applies, started_at, until, alert, evidence,"
        " created_at) VALUES ('c1', 'target/shop/Deployment/cooled', 'scale-oscillation', 'cooling-period',"
        " 'replicas', $1, $2, 'shop/a', '', $1)", minutes(-290), minutes(10))
    await record(store, target("aged"), minutes(-24 * 60 + 15))
    assert action is not None

    changes = await visit_all(repository, start=Cursor(at=minutes(-1)), until=minutes(60), limit=10)
    assert changes == [("acted", minutes(0)), ("assessed", minutes(5)),
                       ("cooled", minutes(10)),                    # the cooling period ended
                       ("aged", minutes(15))]                      # its action left the last 24 hours
    # Another cluster's rows are not ours.
    other = SummaryRepository(store.pool, cluster_id="c2")
    assert await other.changed(after=Cursor(at=minutes(-1)), until=minutes(60), limit=10) == []


async def test_a_cursor_survives_and_a_fresh_one_starts_before_the_oldest_change(stores):
    store, repository = stores
    assert await repository.cursor() is None
    assert await repository.first_cursor() is None
    await record(store, target("a"), minutes(0))
    first = await repository.first_cursor()
    assert first is not None and first.at < minutes(0) and first.key is None
    await repository.save_cursor(Cursor(at=minutes(3), key="shop/Deployment/a"))
    assert await repository.cursor() == Cursor(at=minutes(3), key="shop/Deployment/a")


async def test_the_facts_of_a_summary(stores):
    store, repository = stores
    cart, idle = target("cart"), target("idle")
    now = minutes(0)
    ids = [await record(store, cart, now - datetime.timedelta(hours=h), kind)
           for h, kind in ((30, "scale"), (2, "scale"), (1, "increase_resources"))]
    await store.pool.execute(
        "UPDATE resource_action_traces SET effectiveness_score = 0.25 WHERE id = ANY($1::bigint[])", ids[:2])
    await store.pool.execute(
        "INSERT INTO restrictions (cluster_id, scope, pattern, strategy, applies, started_at, until, alert, evidence)"
        " VALUES ('c1', 'target/shop/Deployment/cart', 'scale-oscillation', 'cooling-period', 'replicas', $1, $2,"
        " 'shop/deployment-cart-scale-oscillation', ''),"
        " ('c1', 'target/shop/Deployment/cart', 'scale-oscillation', 'cooling-period', 'replicas', $1, $3,"
        " 'shop/old', '')", now - datetime.timedelta(minutes=5), now + datetime.timedelta(minutes=25),
        now - datetime.timedelta(minutes=1))
    facts = await repository.facts([cart, idle, target("never-seen")], now=now)
    assert [f.target.name for f in facts] == ["cart"]  # no history, no summary
    (cart_facts,) = facts
    assert cart_facts.total_actions == 3
    assert cart_facts.last_action_at == now - datetime.timedelta(hours=1)
    assert dict(cart_facts.recent) == {"scale": 1, "increase_resources": 1}  # the 30h-old one is not recent
    assert [(s.action_type, s.score) for s in cart_facts.scores] == [("scale", 0.25), ("scale", 0.25)]
    assert cart_facts.restriction is not None
    assert cart_facts.restriction.alert == "shop/deployment-cart-scale-oscillation"  # the one still in force
    assert cart_facts.restriction.until == now + datetime.timedelta(minutes=25)
