"""Honest degraded decisions, lock waits that are not outages, observed actors never refused
(issue 12, items 1, 4 and 5), on the real stores, in-process so a test can hold a lock itself."""

from __future__ import annotations

import datetime

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests import reviews
from tests.gateproc import free_port
from tests.stress.stores_helpers import gate_on, request_of, store_stack
from webhook.actions.model import TargetRef
from webhook.store.errors import Gap
from webhook.store.locks import lock_key

DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:{port}/nothing"
MASTER = "kubernetes-admin"
TARGET_LOCK = "target:shop/Deployment/cart"


def dead_postgres() -> str:
    return DEAD_POSTGRES.format(port=free_port())


def dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_a_postgres_failure_on_a_cold_key_is_not_taken_for_a_redis_failure(fresh_redis_url, tmp_path):
    """The old ``_read`` caught the PostgreSQL failure as a cache error (ConnectionError is an
    OSError) and marked Redis down: the cold target was then decided as if both were gone."""
    async with store_stack(dsn=dead_postgres(), redis_url=fresh_redis_url, spool=tmp_path / "spool",
                           migrated=False) as history:
        gate = gate_on(history)
        proposal_target = reviews.scale(before=3, after=5)
        gaps: set[Gap] = set()
        now = datetime.datetime.now(datetime.timezone.utc)
        events = await history.target_events(TargetRef("shop", "Deployment", "cart"),
                                             since=now - datetime.timedelta(hours=3), now=now, gaps=gaps)
        assert events == []
        assert gaps == {Gap.COLD_CACHE}
        assert history.redis_up is True and history.postgres_up is False
        result = await gate.review(request_of(proposal_target))
        assert result.degraded == Gap.COLD_CACHE.value


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_a_cold_target_with_postgres_down_is_decided_honestly(fresh_redis_url, tmp_path, fail_closed):
    async with store_stack(dsn=dead_postgres(), redis_url=fresh_redis_url, spool=tmp_path / "spool",
                           migrated=False) as history:
        gate = gate_on(history, fail_closed=fail_closed)
        agent = await gate.review(request_of(reviews.scale(before=3, after=5)))
        person = await gate.review(request_of(reviews.scale(before=5, after=3, user=reviews.PERSON)))
        hpa = await gate.review(request_of(reviews.scale(before=3, after=6, user=reviews.HPA)))
        master = await gate.review(request_of(reviews.scale(before=6, after=2, user=MASTER,
                                                            groups=["system:masters", "system:authenticated"])))
        for result in (agent, person, hpa, master):
            assert result.degraded == "cold-cache"
        if fail_closed:
            assert agent.response["response"]["allowed"] is False
            assert agent.response["response"]["status"]["code"] == 503
            assert "cache does not hold" in agent.response["response"]["status"]["message"]
        else:
            assert agent.response["response"]["allowed"] is True
            assert any("without the full history" in w for w in agent.response["response"]["warnings"])
        assert person.response["response"]["allowed"] is True
        assert any("without the full history" in w for w in person.response["response"]["warnings"])
        assert hpa.response["response"]["allowed"] is True
        assert master.response["response"]["allowed"] is True
        # Every admitted one waits in the outbox, to be written once PostgreSQL is back.
        waiting = {e.uid for e in await history.outbox.pending()}
        admitted = [r for r in (agent, person, hpa, master) if r.response["response"]["allowed"]]
        assert {r.decision.event.uid for r in admitted} <= waiting


async def test_with_both_stores_down_and_fail_closed_observed_actors_and_people_are_admitted(tmp_path):
    async with store_stack(dsn=dead_postgres(), redis_url=dead_redis(), spool=tmp_path / "spool",
                           migrated=False) as history:
        gate = gate_on(history, fail_closed=True)
        agent = await gate.review(request_of(reviews.scale(before=3, after=5)))
        hpa = await gate.review(request_of(reviews.scale(before=3, after=6, user=reviews.HPA)))
        master = await gate.review(request_of(reviews.scale(before=6, after=2, user=MASTER,
                                                            groups=["system:masters"])))
        person = await gate.review(request_of(reviews.scale(before=2, after=4, user=reviews.PERSON)))
        assert agent.response["response"]["status"]["code"] == 503
        for result in (hpa, master, person):
            assert result.response["response"]["allowed"] is True, result.response
            assert result.degraded == "unavailable"
        spooled = (tmp_path / "spool").read_text().splitlines()
        assert len(spooled) == 4  # every decision, the refusal included, is kept for PostgreSQL


async def hold_redis_lock(url: str, name: str) -> aioredis.Redis:
    client = aioredis.Redis.from_url(url)
    await client.set(f"sg:default:lock:{name}", "someone-else", px=60_000)
    return client


@pytest.mark.parametrize("redis", ["up", "down"])
async def test_a_busy_lock_answers_automation_retryable_and_is_not_an_outage(
        fresh_database, fresh_redis_url, tmp_path, redis):
    url = fresh_redis_url if redis == "up" else dead_redis()
    async with store_stack(dsn=fresh_database, redis_url=url, spool=tmp_path / "spool", lock_wait=0.3) as history:
        gate = gate_on(history)
        if redis == "up":
            holder = await hold_redis_lock(url, TARGET_LOCK)
        else:
            holder = await asyncpg.connect(fresh_database)
            await holder.execute(f"SELECT pg_advisory_lock({lock_key('default', TARGET_LOCK)})")
        try:
            agent = await gate.review(request_of(reviews.scale(before=3, after=5)))
            person = await gate.review(request_of(reviews.scale(before=3, after=5, user=reviews.PERSON)))
            hpa = await gate.review(request_of(reviews.scale(before=5, after=7, user=reviews.HPA)))
        finally:
            if redis == "up":
                await holder.aclose()
            else:
                await holder.close()
        answer = agent.response["response"]
        assert answer["allowed"] is False and answer["status"]["code"] == 429
        assert answer["status"]["details"] == {"retryAfterSeconds": 1}
        assert agent.decision.outcome.value == "retry" and agent.degraded == "lock-busy"
        assert person.response["response"]["allowed"] is True and person.degraded == "lock-busy"
        assert hpa.response["response"]["allowed"] is True
        # The stores answered all along: a busy lock is not an outage.
        assert history.postgres_up is True
        assert history.redis_up is (redis == "up")
        outcomes = await _decisions(fresh_database)
        assert outcomes == {agent.decision.event.uid: "retry", person.decision.event.uid: "allow",
                            hpa.decision.event.uid: "allow"}


async def _decisions(dsn: str) -> dict[str, str]:
    connection = await asyncpg.connect(dsn)
    try:
        return {r["request_uid"]: r["outcome"] for r in await connection.fetch(
            "SELECT request_uid, outcome FROM admission_decisions")}
    finally:
        await connection.close()


@pytest.mark.parametrize("postgres", ["up", "down"])
async def test_the_same_uid_posted_twice_is_one_cache_entry_and_one_row(fresh_database, fresh_redis_url, tmp_path,
                                                                          postgres):
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool") as history:
        gate = gate_on(history)
        await gate.review(request_of(reviews.scale(before=1, after=2)))  # warms the target's key
        if postgres == "down":
            history.postgres_up = False  # decisions go to the outbox; the warm key still answers
        body = reviews.scale(before=2, after=3)
        first = await gate.review(request_of(body))
        second = await gate.review(request_of(body))  # the API server retried the same request
        assert first.response["response"]["allowed"] and second.response["response"]["allowed"]
        client = aioredis.Redis.from_url(fresh_redis_url, decode_responses=True)
        try:
            members = await client.zrange("sg:default:target:shop/Deployment/cart", 0, -1)
        finally:
            await client.aclose()
        uids = [m for m in members if body["request"]["uid"] in m]
        assert len(uids) == 1
        history.postgres_up = True
        await history.drain()
        connection = await asyncpg.connect(fresh_database)
        try:
            count = await connection.fetchval("SELECT count(*) FROM resource_action_traces WHERE request_uid = $1",
                                              body["request"]["uid"])
        finally:
            await connection.close()
        assert count == 1


async def test_a_busy_lock_raises_only_where_a_refusal_depends_on_it(fresh_database, fresh_redis_url, tmp_path):
    """``serialized(required=True)`` (automation) raises ``LockBusy``; without it (callers recording a
    person's or observed actor's change, such as the overload path) the block runs, told ``BUSY``."""
    from webhook.store.errors import LockBusy, Locking

    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool",
                           lock_wait=0.2) as history:
        async with history.serialized([TARGET_LOCK]) as free:
            assert free is Locking.HELD
        holder = await hold_redis_lock(fresh_redis_url, TARGET_LOCK)
        try:
            with pytest.raises(LockBusy):
                async with history.serialized([TARGET_LOCK], required=True):
                    raise AssertionError("must not run unlocked")
            async with history.serialized([TARGET_LOCK]) as busy:
                assert busy is Locking.BUSY
        finally:
            await holder.aclose()
        assert history.redis_up is True and history.postgres_up is True
