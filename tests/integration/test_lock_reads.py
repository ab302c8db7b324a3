"""A decision's locks and the windows it reads come back in one round trip (issue 15): one script
takes every lock or none and, only once they are held, reads the target's and the actor's windows
with their warm markers. Against a real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests import reviews
from tests.integration.history_helpers import AGENT, TARGET, admitted, history_store
from tests.stress.stores_helpers import request_of, store_stack
from webhook.engine.gate import Gate
from webhook.policy.provider import PolicyProvider
from webhook.settings import Settings
from webhook.store.cache import RedisCache, WindowRead
from webhook.store.errors import LockBusy, Locking
from webhook.store.history import DecisionReads, HistoryStore

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
async def history(fresh_database: str, fresh_redis_url: str) -> AsyncIterator[HistoryStore]:
    async with history_store(fresh_database, fresh_redis_url, pool_size=4, lock_wait=0.2) as history:
        yield history


def cache_of(history: HistoryStore) -> RedisCache:
    assert history.cache is not None
    return history.cache


async def lock_keys(cache: RedisCache) -> set[str]:
    return {key async for key in cache.client.scan_iter(match="sg:default:lock:*")}


async def command_calls(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}


async def test_overlapping_locks_are_taken_all_or_none(history: HistoryStore) -> None:
    cache = cache_of(history)
    first = await cache.acquire_lock("a", "b", wait=0.2)
    with pytest.raises(LockBusy):
        await cache.acquire_lock("b", "c", windows=[WindowRead("target", TARGET.key, datetime.datetime.now(
            datetime.timezone.utc) - HOUR)], wait=0.1)
    assert await lock_keys(cache) == {"sg:default:lock:a", "sg:default:lock:b"}  # "c" was not taken alone
    await cache.release_lock("a", "b", token=first.token)
    second = await cache.acquire_lock("b", "c", wait=0.2)
    assert await lock_keys(cache) == {"sg:default:lock:b", "sg:default:lock:c"}
    await cache.release_lock("b", "c", token=second.token)
    assert await lock_keys(cache) == set()


async def test_a_cold_key_is_reported_cold_and_a_warm_one_with_its_window(history: HistoryStore) -> None:
    cache = cache_of(history)
    now = datetime.datetime.now(datetime.timezone.utc)
    old, recent = admitted(at=now - 2 * HOUR).event, admitted(at=now - datetime.timedelta(minutes=5)).event
    await cache.fill("target", TARGET.key, [old, recent], now=now)
    target = WindowRead("target", TARGET.key, now - HOUR)
    actor = WindowRead("actor", AGENT, now - HOUR)  # never filled: cold
    held = await cache.acquire_lock(f"target:{TARGET.key}", windows=[target, actor], wait=0.2)
    assert held.windows == {target: [recent], actor: None}
    await cache.release_lock(f"target:{TARGET.key}", token=held.token)


async def test_a_window_is_read_only_once_the_lock_is_held(history: HistoryStore) -> None:
    """A decision waiting for the lock sees what the holder wrote before letting go."""
    cache = cache_of(history)
    now = datetime.datetime.now(datetime.timezone.utc)
    await history.target_events(TARGET, since=now - HOUR, now=now)  # warm (empty)
    names = [f"actor:{AGENT}", f"target:{TARGET.key}"]
    reads = DecisionReads(target=TARGET, target_since=now - HOUR, actor=AGENT, actor_since=now - HOUR)
    holding, written = asyncio.Event(), admitted()

    async def holder() -> None:
        async with history.serialized(names, required=True) as locking:
            assert locking is Locking.HELD
            holding.set()
            await asyncio.sleep(0.05)  # the waiter's script runs (and finds the locks busy) meanwhile
            await history.remember(written, now=written.decided_at)

    async def waiter() -> list[str]:
        await holding.wait()
        async with history.serialized(names, required=True, reads=reads) as locking:
            assert locking is Locking.HELD
            events = await history.target_events(TARGET, since=now - HOUR, now=now)
            return [event.uid for event in events]

    _, seen = await asyncio.gather(holder(), waiter())
    assert seen == [written.uid]
    assert await lock_keys(cache) == set()


async def test_a_busy_lock_returns_no_windows_and_the_reads_go_to_redis(history: HistoryStore) -> None:
    """People and observed actors go ahead past a busy lock: what they read is then read on its
    own, after the wait, never a window from a script that did not get the lock."""
    cache = cache_of(history)
    now = datetime.datetime.now(datetime.timezone.utc)
    await history.target_events(TARGET, since=now - HOUR, now=now)  # warm (empty)
    other = await cache.acquire_lock(f"target:{TARGET.key}", wait=0.2)
    reads = DecisionReads(target=TARGET, target_since=now - HOUR)
    async with history.serialized([f"target:{TARGET.key}"], reads=reads) as locking:
        assert locking is Locking.BUSY
        late = admitted()  # written by the holder after the busy script ran
        await history.remember(late, now=late.decided_at)
        events = await history.target_events(TARGET, since=now - HOUR, now=now)
        assert [event.uid for event in events] == [late.uid]
    assert await lock_keys(cache) == {f"sg:default:lock:target:{TARGET.key}"}  # the holder's, untouched
    await cache.release_lock(f"target:{TARGET.key}", token=other.token)


async def test_a_cold_window_read_with_the_lock_is_warmed_from_postgres(history: HistoryStore) -> None:
    cache = cache_of(history)
    stored = admitted()
    await history.postgres.write_effects(stored)  # in PostgreSQL only: the cache key is cold
    now = datetime.datetime.now(datetime.timezone.utc)
    reads = DecisionReads(target=TARGET, target_since=now - HOUR)
    async with history.serialized([f"target:{TARGET.key}"], required=True, reads=reads) as locking:
        assert locking is Locking.HELD
        events = await history.target_events(TARGET, since=now - HOUR, now=now)
    assert [event.uid for event in events] == [stored.uid]
    cached = await cache.read("target", TARGET.key, since=now - HOUR)
    assert cached is not None and [event.uid for event in cached] == [stored.uid]


async def test_a_decision_sends_redis_its_two_batches_and_nothing_else(history: HistoryStore) -> None:
    """The lock script with both windows, then the write's batch (two appends and the release): four
    EVALs in two round trips, with no read of their own and no SCRIPT EXISTS, EVALSHA or MULTI.
    (``commandstats`` also counts the commands the scripts run, under their own names.)"""
    cache = cache_of(history)
    now = datetime.datetime.now(datetime.timezone.utc)
    await history.target_events(TARGET, since=now - HOUR, now=now)
    await history.actor_events(AGENT, since=now - HOUR, now=now)  # both keys warm
    names = [f"actor:{AGENT}", f"target:{TARGET.key}"]
    reads = DecisionReads(target=TARGET, target_since=now - HOUR, actor=AGENT, actor_since=now - HOUR)
    before = await command_calls(cache.client)
    async with history.serialized(names, required=True, reads=reads) as locking:
        assert locking is Locking.HELD
        assert await history.target_events(TARGET, since=now - HOUR, now=now) == []
        assert await history.actor_events(AGENT, since=now - HOUR, now=now) == []
        effects = admitted()
        await history.remember(effects, now=effects.decided_at)
    after = await command_calls(cache.client)
    sent = {name for name, calls in after.items() if calls > before.get(name, 0)}
    assert after["eval"] - before["eval"] == 4
    inside_scripts = {"exists", "set", "zrangebyscore", "zadd", "zremrangebyscore", "expire", "get", "del"}
    assert sent <= {"eval", "info"} | inside_scripts  # "info": the one that took ``before``
    assert await lock_keys(cache) == set()
    events = await history.target_events(TARGET, since=now - HOUR, now=now)
    assert [event.uid for event in events] == [effects.uid]


async def test_a_connection_redis_closed_while_idle_costs_no_decision(history: HistoryStore,
                                                                      fresh_redis_url: str) -> None:
    """``batch`` keeps idle connections out of the pool; one Redis dropped (a restart, its idle
    timeout) is replaced at once, not taken for an outage."""
    now = datetime.datetime.now(datetime.timezone.utc)
    await history.target_events(TARGET, since=now - HOUR, now=now)  # warm; leaves a kept connection
    killer = aioredis.Redis.from_url(fresh_redis_url)
    try:
        assert await killer.client_kill_filter(_type="normal", skipme=True) >= 1
    finally:
        await killer.aclose()
    reads = DecisionReads(target=TARGET, target_since=now - HOUR)
    async with history.serialized([f"target:{TARGET.key}"], required=True, reads=reads) as locking:
        assert locking is Locking.HELD
        assert await history.target_events(TARGET, since=now - HOUR, now=now) == []
        effects = admitted()
        await history.remember(effects, now=effects.decided_at)
    assert history.redis_up
    checker = aioredis.Redis.from_url(fresh_redis_url, decode_responses=True)
    try:
        assert await checker.keys("sg:default:lock:*") == []
        assert await checker.zcard(f"sg:default:target:{TARGET.key}") == 1
    finally:
        await checker.aclose()


class CountingCache(RedisCache):
    """The real cache, counting its round trips on the decision path."""

    batches = 0

    async def batch(self, commands):  # noqa: ANN001, ANN201 - same signature as the parent's
        self.batches += 1
        return await super().batch(commands)


async def test_a_gate_decision_on_warm_keys_makes_two_round_trips_to_redis(fresh_database, fresh_redis_url,
                                                                          tmp_path) -> None:
    """Through ``Gate.review``: the windows it reads are the ones the lock script brought back."""
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool") as history:
        assert history.cache is not None
        counting = CountingCache(history.cache.client, cluster_id="default", horizon=history.cache.horizon)
        history.cache = counting
        gate = Gate(history=history, policies=PolicyProvider(), rules=Settings().actor_rules())
        first = await gate.review(request_of(reviews.scale(before=3, after=4)))  # warms the target and actor keys
        assert first.decision is not None and first.decision.allowed
        counting.batches = 0
        before = await command_calls(counting.client)
        second = await gate.review(request_of(reviews.scale(before=4, after=5)))
        after = await command_calls(counting.client)
        assert second.decision is not None and second.decision.allowed
        assert counting.batches == 2
        assert {name for name, calls in after.items() if calls > before.get(name, 0)} <= {
            "eval", "info", "exists", "set", "get", "zrangebyscore", "zadd", "zremrangebyscore", "expire", "del"}
        events = await history.target_events(TARGET, since=first.decision.event.at - HOUR,
                                             now=second.decision.event.at)
        assert [e.uid for e in events] == [first.decision.event.uid, second.decision.event.uid]
