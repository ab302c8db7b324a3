"""Redis, the hot cache and coordination point: recent events per target and per actor, and
per-target locks. Losing Redis loses nothing: every read falls back to PostgreSQL and a cold
key is warmed from it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import secrets
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection

from webhook.actions.model import ActionEvent
from webhook.store.errors import LockBusy

# A command as sent to Redis: its name and arguments.
Command = tuple[str | int | float, ...]
# Idle connections ``batch`` keeps for itself: about the decisions in flight at once on one core.
KEPT_CONNECTIONS = 8

# All the locks or none; with them, the windows the decision reads, so a decision's reads cost no
# round trip of their own. Each window is read only once its locks are held, as a separate read would
# be. KEYS: the locks, then each window's events key and warm marker. ARGV: token, TTL in ms, the
# number of locks, then each window's lower bound. Returns nil (busy) or one entry per window:
# its members, or false for a cold key (not trusted: the caller warms it from PostgreSQL).
# A lock already held with this token counts as free, so the script can be sent again (``batch``).
_ACQUIRE = """
local locks = tonumber(ARGV[3])
for i = 1, locks do
  local holder = redis.call('get', KEYS[i])
  if holder and holder ~= ARGV[1] then return false end
end
for i = 1, locks do
  redis.call('set', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
local windows = {}
for w = 1, (#KEYS - locks) / 2 do
  if redis.call('exists', KEYS[locks + 2 * w]) == 1 then
    windows[w] = redis.call('zrangebyscore', KEYS[locks + 2 * w - 1], ARGV[3 + w], '+inf')
  else
    windows[w] = false
  end
end
return windows
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


@dataclasses.dataclass(frozen=True)
class WindowRead:
    """A cached window to read along with the locks: the events of ``kind``/``name`` after ``since``."""

    kind: str
    name: str
    since: datetime.datetime


@dataclasses.dataclass(frozen=True)
class Held:
    """Locks taken, and what each window asked for held: its events, or None for a cold key."""

    token: str
    windows: dict[WindowRead, list[ActionEvent] | None]


class RedisCache:
    """Sorted sets of event JSON scored by time, one per target and one per actor.

    A ``warm`` marker says the set holds everything since ``horizon`` ago; without it the set
    is not trusted and the caller reloads it from PostgreSQL (after a Redis restart, say).

    The decision path talks to Redis through ``batch``: its commands in one write, on a pooled
    connection, with no Pipeline object and no ``EVALSHA`` wrapper (issue 15: redis-py spent ~85 µs
    of CPU per command, and a pipeline holding a script asks ``SCRIPT EXISTS`` first, one more round
    trip). Scripts go as ``EVAL`` with their text: Redis caches them by digest, and a Redis that
    restarted (and forgot its scripts) never answers ``NOSCRIPT`` halfway through a batch.
    """

    def __init__(self, client: aioredis.Redis, *, cluster_id: str, horizon: datetime.timedelta) -> None:
        self.client = client
        self.prefix = f"sg:{cluster_id}"
        self.horizon = horizon
        self._kept: list[AbstractConnection] = []  # see ``batch``

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
        while self._kept:
            await self.client.connection_pool.release(self._kept.pop())
        await self.client.aclose()

    def _events_key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    async def batch(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write and return their replies: one round trip. An error reply
        raises (``ResponseError``, a ``RedisError``) like any failure of Redis.

        A few idle connections are kept out of the pool, since the pool's checkout (a condition,
        a timeout, a readiness probe) cost about as much CPU as the command itself. A kept one Redis
        closed while idle (a restart, say) fails at once; the batch then goes again on a connection
        the pool checked. That is safe because every batch command is idempotent: the lock script
        takes a lock its own token holds, appends add the same member, releases check the token.
        """
        if self._kept:
            try:
                return await self._send(self._kept.pop(), commands)
            except redis.exceptions.ConnectionError:
                pass
        return await self._send(await self.client.connection_pool.get_connection(), commands)

    async def _send(self, connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            replies = [await connection.read_response() for _ in commands]
        except BaseException:
            # Replies may be left unread on this connection: they would be taken for the next
            # caller's, so it is closed (the pool reconnects it on next use).
            await connection.disconnect(nowait=True)
            await self.client.connection_pool.release(connection)
            raise
        if len(self._kept) < KEPT_CONNECTIONS:
            self._kept.append(connection)
        else:
            await self.client.connection_pool.release(connection)
        return replies

    async def read(self, kind: str, name: str, *, since: datetime.datetime) -> list[ActionEvent] | None:
        """Events after ``since``, oldest first; None when the key is cold."""
        key = self._events_key(kind, name)
        warm, members = await self.batch([("EXISTS", key + ":warm"), ("ZRANGEBYSCORE", key, f"({since.timestamp()}",
                                                                       "+inf")])
        return _events(members) if warm else None

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

    def append(self, kind: str, name: str, event: ActionEvent, *, member: str, now: datetime.datetime,
               once: bool = False) -> Command:
        """The command (for a ``batch``) adding an event, as ``member`` (its JSON, encoded once for
        all its keys), to a warm key; a cold one is left cold and warmed on the next read.
        ``once``: skip it if this uid was appended to the key before."""
        key = self._events_key(kind, name)
        keys = (key, key + ":warm", *((f"{key}:uid:{event.uid}",) if once else ()))
        return ("EVAL", _APPEND, len(keys), *keys, event.at.timestamp(), member, (now - self.horizon).timestamp(),
                int(self.horizon.total_seconds()) + 60)

    async def invalidate(self, kind: str, name: str) -> None:
        await self.client.delete(self._events_key(kind, name) + ":warm")

    async def acquire_lock(self, *names: str, windows: Sequence[WindowRead] = (), ttl: float = 5.0,
                           wait: float = 2.5) -> Held:
        """Take short exclusive locks shared by every replica, all at once or none, and read
        ``windows`` in the same round trip, once the locks are held.

        All-or-none in one script means two requests that need overlapping locks can never each
        hold a part and wait for the other. The TTL bounds how long a crashed holder blocks
        others; ``LockBusy`` after ``wait`` (and no window read).
        """
        keys = [f"{self.prefix}:lock:{name}" for name in names]
        for window in windows:
            key = self._events_key(window.kind, window.name)
            keys += [key, key + ":warm"]
        token = secrets.token_hex(8)
        command: Command = ("EVAL", _ACQUIRE, len(keys), *keys, token, int(ttl * 1000), len(names),
                   *(f"({window.since.timestamp()}" for window in windows))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = 0.002
        while (read := (await self.batch([command]))[0]) is None:
            if loop.time() >= deadline:
                raise LockBusy(f"lock {', '.join(names)} busy for {wait}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return Held(token=token, windows={window: None if members is None else _events(members)
                                          for window, members in zip(windows, read, strict=True)})

    def release(self, *names: str, token: str) -> Command:
        """The command (for a ``batch``) releasing these locks if ``token`` still holds them."""
        return ("EVAL", _RELEASE, len(names), *(f"{self.prefix}:lock:{name}" for name in names), token)

    async def release_lock(self, *names: str, token: str) -> None:
        await self.batch([self.release(*names, token=token)])


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

    def add(self, restriction_json: str, *, until: datetime.datetime, now: datetime.datetime,
            memory: datetime.timedelta) -> list[Command]:
        """The commands (for a ``batch``) adding a restriction and forgetting those past ``memory``."""
        return [("ZADD", self.key, until.timestamp(), restriction_json),
                ("ZREMRANGEBYSCORE", self.key, "-inf", (now - memory).timestamp())]

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


def _events(members: Sequence[str]) -> list[ActionEvent]:
    return [ActionEvent.from_json(json.loads(member)) for member in members]


async def forget_warm_keys(cache: RedisCache) -> int:
    """After Redis was unreachable, no cached history can be trusted to be complete: drop the
    ``warm`` markers so every key is rebuilt from PostgreSQL on its next read."""
    removed = 0
    async for key in cache.client.scan_iter(match=f"{cache.prefix}:*:warm", count=500):
        removed += await cache.client.delete(key)
    return removed
