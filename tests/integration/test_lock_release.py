"""A decision's Redis locks are released in the round trip of its cache write (issue 15), and by
``serialized`` itself when there is no cache write; either way none is left behind."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator

import pytest

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.server.runtime import CACHE_HORIZON
from webhook.store.cache import RedisCache
from webhook.store.effects import Effects
from webhook.store.errors import Locking
from webhook.store.history import HistoryStore
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool

AGENT = "system:serviceaccount:remediation:agent"
TARGET = TargetRef("shop", "Deployment", "cart", "apps/v1")


def admitted(*, record: bool = True) -> Effects:
    now = datetime.datetime.now(datetime.timezone.utc)
    event = ActionEvent(uid=str(uuid.uuid4()), at=now, target=TARGET, action_type="scale_deployment", actor=AGENT,
                        actor_class=ActorClass.AUTOMATION, replicas_before=3, replicas_after=4)
    return Effects(uid=event.uid, decided_at=now, event=event, record=record, outcome="allow", allowed=True,
                   code=None, pattern=None, strategy=None, message=None, warnings=(), latency_ms=1.0)


@pytest.fixture
async def history(fresh_database: str, fresh_redis_url: str) -> AsyncIterator[HistoryStore]:
    await migrate(fresh_database)
    pool = await create_pool(fresh_database, max_size=2)
    cache = RedisCache.from_url(fresh_redis_url, cluster_id="default", horizon=CACHE_HORIZON)
    try:
        yield HistoryStore(postgres=PostgresStore(pool, cluster_id="default"), cache=cache)
    finally:
        await cache.close()
        await pool.close()


async def lock_keys(history: HistoryStore) -> list[str]:
    assert history.cache is not None
    return [key async for key in history.cache.client.scan_iter(match="sg:default:lock:*")]


async def test_the_cache_write_releases_the_locks(history: HistoryStore) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    await history.target_events(TARGET, since=now - datetime.timedelta(hours=1), now=now)  # warm the key
    names = [f"actor:{AGENT}", f"target:{TARGET.key}"]
    async with history.serialized(names, required=True) as locking:
        assert locking is Locking.HELD
        assert len(await lock_keys(history)) == 2
        effects = admitted()
        await history.remember(effects, now=effects.decided_at)
        assert await lock_keys(history) == []  # gone with the write, before the block ends
    events = await history.target_events(TARGET, since=now - datetime.timedelta(hours=1), now=now)
    assert [event.uid for event in events] == [effects.uid]  # and the write itself landed in the cache


async def test_without_a_cache_write_serialized_releases_them(history: HistoryStore) -> None:
    names = [f"target:{TARGET.key}"]
    async with history.serialized(names, required=True) as locking:
        assert locking is Locking.HELD
        effects = admitted(record=False)
        await history.remember(effects, now=effects.decided_at)  # nothing to cache: no pipeline
        assert len(await lock_keys(history)) == 1
    assert await lock_keys(history) == []
    async with history.serialized(names, required=True) as again:  # free at once, not after the TTL
        assert again is Locking.HELD
