"""The outbox after an outage never stalls decisions (issue 15), and still loses nothing.

A drain goes in bounded batches with a rest between them and lands every entry exactly once,
also when PostgreSQL goes away in the middle of a batch. Decisions read only the waiting entries of
their own target and actor, from a view that reads what was added since its last look, including
what another replica pushed. Real PostgreSQL and Redis throughout.
"""

from __future__ import annotations

import datetime
import pathlib
import uuid

import asyncpg

from tests.stress.stores_helpers import store_stack
from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.store.effects import Effects
from webhook.store.errors import PostgresUnavailable
from webhook.store.outbox import BATCH, Outbox

AGENT = "system:serviceaccount:remediation:agent"


def bundle(name: str, *, actor: str = AGENT, at: datetime.datetime | None = None) -> Effects:
    now = at or datetime.datetime.now(datetime.timezone.utc)
    event = ActionEvent(uid=str(uuid.uuid4()), at=now, target=TargetRef("shop", "Deployment", name, "apps/v1"),
                        action_type="scale_deployment", actor=actor, actor_class=ActorClass.AUTOMATION,
                        replicas_before=2, replicas_after=3)
    return Effects(uid=event.uid, decided_at=now, event=event, record=True, outcome="allow", allowed=True,
                   code=None, pattern=None, strategy=None, message=None, warnings=(), latency_ms=1.0)


async def traced(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT request_uid, count(*) AS n FROM resource_action_traces GROUP BY 1")
    finally:
        await connection.close()
    return {row["request_uid"]: row["n"] for row in rows}


class Rests:
    """The drain's sleep, recorded instead of waited for (the pacing is the drain's own code)."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


async def test_a_drain_in_batches_lands_every_entry_exactly_once_and_rests_between_batches(
        fresh_database, fresh_redis_url, tmp_path):
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool.jsonl") as history:
        assert history.outbox is not None
        rests = Rests()
        history.outbox = Outbox(redis=history.outbox.redis, stream=history.outbox.stream, spool=history.outbox.spool,
                                sleep=rests)
        queued = [bundle(f"app-{i % 7}") for i in range(2 * BATCH + 50)]
        history.postgres_up = False
        for effects in queued:
            assert await history.remember(effects, now=effects.decided_at) == "redis"
        history.postgres_up = True

        assert await history.drain() == len(queued)

        assert await history.outbox_depth() == 0
        assert await traced(fresh_database) == {effects.uid: 1 for effects in queued}
        assert len(rests.taken) == 2  # after each full batch; the last, short one ends the drain
        assert await history.drain() == 0


async def test_postgres_going_away_mid_batch_keeps_what_was_not_written_and_the_next_drain_lands_it_once(
        fresh_database, fresh_redis_url, tmp_path):
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool.jsonl") as history:
        outbox = history.outbox
        assert outbox is not None
        queued = [bundle(f"app-{i}") for i in range(BATCH + 30)]
        history.postgres_up = False
        for effects in queued:
            await history.remember(effects, now=effects.decided_at)
        history.postgres_up = True
        written = 0

        async def fails_after_a_while(effects: Effects) -> bool:
            nonlocal written
            if written == BATCH // 2:
                raise PostgresUnavailable("gone")
            written += 1
            return await history._replay(effects)

        async def bury(raw: str, reason: str) -> None:
            raise AssertionError(f"nothing here is unreadable: {reason}")

        try:
            await outbox.drain(fails_after_a_while, bury=bury)
        except PostgresUnavailable:
            pass
        else:
            raise AssertionError("the drain should have stopped where PostgreSQL went away")
        assert await outbox.depth() == len(queued) - BATCH // 2  # the written half of the batch left the stream
        assert await history.drain() == len(queued) - BATCH // 2
        assert await traced(fresh_database) == {effects.uid: 1 for effects in queued}


async def test_decisions_see_only_their_own_waiting_entries_including_those_pushed_later_and_by_another_replica(
        fresh_database, fresh_redis_url, tmp_path):
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "a.jsonl") as history, \
            store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "b.jsonl") as other:
        assert history.outbox is not None
        outbox = history.outbox
        cart, other_cart = bundle("cart"), bundle("cart", actor="system:serviceaccount:shop:other")
        noise = [bundle(f"noise-{i}") for i in range(BATCH + 10)]  # more than one read of the view
        history.postgres_up = other.postgres_up = False
        for effects in [cart, *noise]:
            await history.remember(effects, now=effects.decided_at)

        first = await outbox.waiting(target_key=cart.event.target.key)
        assert [e.uid for e in first] == [cart.uid]
        assert len(await outbox.waiting(actor=AGENT)) == 1 + len(noise)

        await other.remember(other_cart, now=other_cart.decided_at)  # another replica, the same stream
        assert [e.uid for e in await outbox.waiting(target_key=cart.event.target.key)] == [cart.uid, other_cart.uid]
        assert [e.uid for e in await outbox.waiting(actor=other_cart.event.actor)] == [other_cart.uid]

        # What a decision reads while PostgreSQL is back but entries still wait: each action once.
        history.postgres_up = True
        history.outbox_pending = True
        since = cart.event.at - datetime.timedelta(minutes=1)
        now = datetime.datetime.now(datetime.timezone.utc)
        events = await history.target_events(cart.event.target, since=since, now=now)
        assert sorted(e.uid for e in events) == sorted([cart.uid, other_cart.uid])

        await history.drain()
        assert await history.outbox_depth() == 0  # the stream seen empty: the view lets go
        assert await outbox.waiting(target_key=cart.event.target.key) == []
        events = await history.target_events(cart.event.target, since=since, now=now)
        assert sorted(e.uid for e in events) == sorted([cart.uid, other_cart.uid])  # now from PostgreSQL


async def test_without_redis_the_spooled_entries_of_a_target_are_found(tmp_path: pathlib.Path) -> None:
    outbox = Outbox(redis=None, stream="unused", spool=tmp_path / "spool.jsonl")
    cart, web = bundle("cart"), bundle("web", actor="system:serviceaccount:shop:other")
    assert await outbox.push(cart) == "spool" and await outbox.push(web) == "spool"
    assert [e.uid for e in await outbox.waiting(target_key=cart.event.target.key)] == [cart.uid]
    assert [e.uid for e in await outbox.waiting(actor=web.event.actor)] == [web.uid]
