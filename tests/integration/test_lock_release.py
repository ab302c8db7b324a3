"""A decision's Redis locks are released in the round trip of its cache write (issue 15), and by
``serialized`` itself when there is no cache write; either way none is left behind."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import pytest

from tests.integration.history_helpers import AGENT, TARGET, admitted, history_store
from webhook.store.errors import Locking
from webhook.store.history import HistoryStore


@pytest.fixture
async def history(fresh_database: str, fresh_redis_url: str) -> AsyncIterator[HistoryStore]:
    async with history_store(fresh_database, fresh_redis_url) as history:
        yield history


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
