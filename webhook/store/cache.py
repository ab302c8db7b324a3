"""Redis, the hot cache and coordination point: recent events per target and per actor, and
per-target locks. Losing Redis loses nothing: every read falls back to PostgreSQL and a cold
key is warmed from it."""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
from collections.abc import Sequence
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from webhook.actions.model import ActionEvent
from webhook.store.errors import LockBusy

_ACQUIRE = """
for _, key in ipairs(KEYS) do
  if redis.call('exists', key) == 1 then return 0 end
end
for _, key in ipairs(KEYS) do
  redis.call('set', key, ARGV[1], 'PX', ARGV[2])
end
return 1
"""
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then redis.call('del', key) end
end
return 1
"""

# zadd only if warm; a cold key will be rebuilt from PostgreSQL, which already has the event.
# With a guard key (the event waits in the outbox, so PostgreSQL could not say whether this request
# uid was seen before), only the first append of a uid lands: a request posted twice is one event.
_APPEND = """
if redis.call('exists', KEYS[2]) == 1 then
  if KEYS[3] and redis.call('set', KEYS[3], '1', 'NX', 'EX', ARGV[4]) == false then return 0 end
  redis.call('zadd', KEYS[1], ARGV[1], ARGV[2])
  redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[3])
  redis.call('expire', KEYS[1], ARGV[4])
end
return 1
"""


class RedisCache:
    """Sorted sets of event JSON scored by time, one per target and one per actor.

    A ``warm`` marker says the set holds everything since ``horizon`` ago; without it the set
    is not trusted and the caller reloads it from PostgreSQL (after a Redis restart, say).
    """

    def __init__(self, client: aioredis.Redis, *, cluster_id: str, horizon: datetime.timedelta) -> None:
        self.client = client
        self.prefix = f"sg:{cluster_id}"
        self.horizon = horizon
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._append = client.register_script(_APPEND)

    @classmethod
    def from_url(cls, url: str, *, cluster_id: str, horizon: datetime.timedelta) -> RedisCache:
        # A blocking pool: a burst of concurrent requests waits (up to a second) for a connection
        # instead of failing with "Too many connections", which the history store would take
        # for a Redis outage and fall back to PostgreSQL locks for every decision.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=100, timeout=1.0, socket_timeout=1.0,
                                                        socket_connect_timeout=1.0, decode_responses=True)
        return cls(aioredis.Redis.from_pool(pool), cluster_id=cluster_id, horizon=horizon)

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    def _events_key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    async def read(self, kind: str, name: str, *, since: datetime.datetime) -> list[ActionEvent] | None:
        """Events after ``since``, oldest first; None when the key is cold."""
        key = self._events_key(kind, name)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.exists(key + ":warm")
            pipe.zrangebyscore(key, f"({since.timestamp()}", "+inf")
            warm, members = await pipe.execute()
        if not warm:
            return None
        return [ActionEvent.from_json(json.loads(member)) for member in members]

    async def fill(self, kind: str, name: str, events: Sequence[ActionEvent], *, now: datetime.datetime) -> None:
        """Replace a cold key with what PostgreSQL holds, and mark it warm."""
        key = self._events_key(kind, name)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if events:
                pipe.zadd(key, {json.dumps(e.to_json(), sort_keys=True): e.at.timestamp() for e in events})
            pipe.set(key + ":warm", "1", ex=int(self.horizon.total_seconds()))
            pipe.expire(key, int(self.horizon.total_seconds()) + 60)
            await pipe.execute()

    async def append(self, pipe: Pipeline, kind: str, name: str, event: ActionEvent, *,
                     now: datetime.datetime, once: bool = False) -> None:
        """Queue, on the caller's pipeline, adding an event to a warm key (a cold one is left cold
        and warmed on the next read). ``once``: skip it if this uid was appended to the key before."""
        key = self._events_key(kind, name)
        keys = [key, key + ":warm"] + ([f"{key}:uid:{event.uid}"] if once else [])
        await self._append(keys=keys,
                     args=[event.at.timestamp(), json.dumps(event.to_json(), sort_keys=True),
                           (now - self.horizon).timestamp(), int(self.horizon.total_seconds()) + 60],
                     client=pipe)

    async def invalidate(self, kind: str, name: str) -> None:
        await self.client.delete(self._events_key(kind, name) + ":warm")

    async def acquire_lock(self, *names: str, ttl: float = 5.0, wait: float = 2.5) -> str:
        """Take short exclusive locks shared by every replica, all at once or none; returns the token.

        All-or-none in one script means two requests that need overlapping locks can never each
        hold a part and wait for the other. The TTL bounds how long a crashed holder blocks
        others; ``LockBusy`` after ``wait``.
        """
        keys = [f"{self.prefix}:lock:{name}" for name in names]
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = 0.002
        while not await self._acquire(keys=keys, args=[token, int(ttl * 1000)]):
            if loop.time() >= deadline:
                raise LockBusy(f"lock {', '.join(names)} busy for {wait}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return token

    async def release_lock(self, *names: str, token: str, client: Pipeline | None = None) -> None:
        """Release now, or queue the release on ``client`` (a pipeline the caller executes)."""
        await self._release(keys=[f"{self.prefix}:lock:{name}" for name in names], args=[token], client=client)


    @property
    def epoch_key(self) -> str:
        return f"{self.prefix}:epoch"

    async def has_epoch(self) -> bool:
        """Whether Redis still holds what it held when the marker was set: a Redis restarted
        without its data (or flushed) has lost the marker along with every cached history."""
        return bool(await self.client.exists(self.epoch_key))

    async def set_epoch(self) -> None:
        await self.client.set(self.epoch_key, "1")


class RestrictionMirror:
    """Restrictions in force, mirrored in Redis so decisions can honour them while PostgreSQL is down."""

    def __init__(self, cache: RedisCache) -> None:
        self.client = cache.client
        self.key = f"{cache.prefix}:restrictions"

    def add(self, pipe: Pipeline, restriction_json: str, *, until: datetime.datetime, now: datetime.datetime,
            memory: datetime.timedelta) -> None:
        """Queue, on the caller's pipeline, a restriction (and forget those past ``memory``)."""
        pipe.zadd(self.key, {restriction_json: until.timestamp()})
        pipe.zremrangebyscore(self.key, "-inf", (now - memory).timestamp())

    async def replace_all(self, restrictions_json: Sequence[tuple[str, datetime.datetime]]) -> None:
        """Make the mirror hold exactly these (after Redis lost writes PostgreSQL has)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            if restrictions_json:
                pipe.zadd(self.key, {text: until.timestamp() for text, until in restrictions_json})
            await pipe.execute()

    async def since(self, moment: datetime.datetime) -> list[str]:
        members = await self.client.zrangebyscore(self.key, f"({moment.timestamp()}", "+inf")
        return cast("list[str]", members)  # decode_responses=True: members are str


async def forget_warm_keys(cache: RedisCache) -> int:
    """After Redis was unreachable, no cached history can be trusted to be complete: drop the
    ``warm`` markers so every key is rebuilt from PostgreSQL on its next read."""
    removed = 0
    async for key in cache.client.scan_iter(match=f"{cache.prefix}:*:warm", count=500):
        removed += await cache.client.delete(key)
    return removed
