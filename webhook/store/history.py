"""One front for every read and write the gate makes, with the fallbacks of DESIGN §7.

* Reads go to Redis and fall back to PostgreSQL; with PostgreSQL down a warm Redis key still
  answers, merged with what waits in the outbox.
* Writes go to PostgreSQL in one idempotent transaction per decision; when it is down they go
  to the outbox (Redis stream, else an fsync'd local spool) and are replayed when it returns.
* Decisions on one target are serialized by a Redis lock, or a PostgreSQL advisory lock while
  Redis is down.
* With both stores down, ``StoresUnavailable`` tells the gate to fail open (or closed).

A store that failed is skipped (not retried on every request) until the background check
(``check``) sees it answer again; that keeps a dead store from adding a timeout to every
decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg
import redis.exceptions

from webhook.actions.model import ActionEvent, TargetRef
from webhook.decision.state import Approval, Restriction
from webhook.store.cache import LockTimeout, RedisCache, RestrictionMirror, forget_warm_keys
from webhook.store.effects import Effects
from webhook.store.outbox import Outbox
from webhook.store.postgres import PostgresStore

logger = logging.getLogger(__name__)

CACHE_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)
POSTGRES_ERRORS = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError, asyncpg.exceptions.TooManyConnectionsError,
    # A server that died: mid-query (ConnectionDoesNotExistError), or on an idle pooled connection
    # whose FATAL arrived before its EOF (InternalClientError "another operation is in progress").
    asyncpg.PostgresConnectionError, asyncpg.exceptions.InternalClientError,
)
RESTRICTION_MEMORY = datetime.timedelta(hours=48)
T = TypeVar("T")


class StoresUnavailable(RuntimeError):
    """Neither PostgreSQL nor Redis can answer: nothing to decide from."""


class HistoryStore:
    def __init__(self, *, postgres: PostgresStore, cache: RedisCache | None, outbox: Outbox | None = None) -> None:
        self.postgres = postgres
        self.cache = cache
        self.outbox = outbox
        self.mirror = RestrictionMirror(cache) if cache is not None else None
        self.postgres_up = True
        self.redis_up = cache is not None
        self._redis_suspect = False
        # Whether decisions may still wait in the outbox (this replica's or another's): refreshed by
        # every upkeep check, set at once when this replica pushes, so the hot path never asks Redis.
        self.outbox_pending = False

    # --- health -------------------------------------------------------------------------------

    def mode(self) -> str | None:
        """``None`` when healthy, else which store the gate is deciding without."""
        if not self.postgres_up and not self.redis_up:
            return "unavailable"
        if not self.postgres_up:
            return "postgres-down"
        if self.cache is not None and not self.redis_up:
            return "redis-down"
        return None

    def _postgres_failed(self, exc: BaseException) -> None:
        if self.postgres_up:
            logger.warning("postgres unavailable, deciding from the cache: %s", exc)
        self.postgres_up = False

    def _redis_failed(self, exc: BaseException) -> None:
        if self.redis_up:
            logger.warning("redis unavailable, reading and locking in postgres: %s", exc)
        self.redis_up = False
        self._redis_suspect = True

    async def check(self) -> dict[str, bool]:
        """Ping both stores, bring recovered ones back into use, replay the outbox."""
        try:
            await asyncio.wait_for(self.postgres.ping(), 2)
            recovered = not self.postgres_up
            self.postgres_up = True
            if recovered:
                logger.info("postgres is back")
        except (*POSTGRES_ERRORS, asyncpg.PostgresError) as exc:
            self._postgres_failed(exc)
        if self.cache is not None:
            try:
                await asyncio.wait_for(self.cache.ping(), 2)
                if self._redis_suspect:
                    removed = await forget_warm_keys(self.cache)
                    logger.info("redis is back; %d cached histories will be rebuilt from postgres", removed)
                    self._redis_suspect = False
                self.redis_up = True
            except CACHE_ERRORS as exc:
                self._redis_failed(exc)
        if self.postgres_up and self.outbox is not None:
            await self.drain()
        return {"postgres": self.postgres_up, **({"redis": self.redis_up} if self.cache is not None else {})}

    async def drain(self) -> int:
        assert self.outbox is not None
        try:
            landed = await self.outbox.drain(self.postgres.write_effects)
        except (*POSTGRES_ERRORS, asyncpg.PostgresError) as exc:
            self._postgres_failed(exc)
            return 0
        except CACHE_ERRORS as exc:
            self._redis_failed(exc)
            return 0
        if landed:
            logger.info("wrote %d decision(s) from the outbox to postgres", landed)
        return landed

    async def outbox_depth(self) -> int:
        if self.outbox is None:
            return 0
        try:
            depth = await self.outbox.depth()
        except CACHE_ERRORS:
            return 0
        self.outbox_pending = depth > 0
        return depth

    # --- reads --------------------------------------------------------------------------------

    async def _from_postgres(self, query: Callable[[], Awaitable[T]]) -> T:
        if not self.postgres_up:
            raise ConnectionError("postgres marked down")
        try:
            return await query()
        except POSTGRES_ERRORS as exc:
            self._postgres_failed(exc)
            raise ConnectionError(str(exc)) from exc

    async def target_events(self, target: TargetRef, *, since: datetime.datetime,
                            now: datetime.datetime) -> list[ActionEvent]:
        events = await self._read("target", target.key, since=since, now=now,
                                  load=lambda horizon: self.postgres.target_events(target, since=horizon))
        return await self._with_pending(events, since=since, keep=lambda e: e.target == target)

    async def actor_events(self, actor: str, *, since: datetime.datetime,
                           now: datetime.datetime) -> list[ActionEvent]:
        events = await self._read("actor", actor, since=since, now=now,
                                  load=lambda horizon: self.postgres.actor_events(actor, since=horizon))
        return await self._with_pending(events, since=since, keep=lambda e: e.actor == actor)

    async def _read(self, kind: str, name: str, *, since: datetime.datetime, now: datetime.datetime,
                    load: Callable[[datetime.datetime], Awaitable[list[ActionEvent]]]) -> list[ActionEvent]:
        if self.cache is not None and self.redis_up:
            try:
                cached = await self.cache.read(kind, name, since=since)
                if cached is not None:
                    return cached
                if self.postgres_up:
                    events = await self._from_postgres(lambda: load(now - self.cache.horizon))
                    await self.cache.fill(kind, name, events, now=now)
                    return [event for event in events if event.at > since]
            except CACHE_ERRORS as exc:
                self._redis_failed(exc)
            except ConnectionError:
                pass
        try:
            return await self._from_postgres(lambda: load(since))
        except ConnectionError:
            if not self.redis_up:
                raise StoresUnavailable("postgres and redis are both unavailable") from None
            return []  # PostgreSQL down and this key not cached: decide from what the outbox holds

    async def _with_pending(self, events: list[ActionEvent], *, since: datetime.datetime,
                            keep: Callable[[ActionEvent], bool]) -> list[ActionEvent]:
        """Add admitted actions that wait in the outbox: history the database has not seen yet."""
        if self.outbox is None or (self.postgres_up and not self.outbox_pending):
            return events
        known = {event.uid for event in events}
        pending = [e.event for e in await self.outbox.pending()
                   if e.record and e.event.uid not in known and e.event.at > since and keep(e.event)]
        return sorted([*events, *pending], key=lambda event: event.at) if pending else events

    async def restrictions(self, *, scopes: Sequence[str], actor: str | None,
                           now: datetime.datetime) -> list[Restriction]:
        """Restrictions that ended within the memory window (expired ones feed resets and counts)."""
        since = now - RESTRICTION_MEMORY
        found: dict[tuple[str, str, str, str], Restriction] = {}
        postgres_answered = False
        try:
            for r in await self._from_postgres(
                    lambda: self.postgres.restrictions(scopes=scopes, actor=actor, since=since)):
                found[_restriction_key(r)] = r
            postgres_answered = True
        except ConnectionError:
            pass
        # PostgreSQL is complete unless decisions wait in the outbox; only then (or without it)
        # does the Redis mirror have something to add.
        mirror_needed = not postgres_answered or self.outbox_pending
        if self.mirror is not None and self.redis_up and mirror_needed:
            try:
                for raw in await self.mirror.since(since):
                    r = Restriction.from_json(json.loads(raw))
                    if r.scope in scopes or (actor and r.scope.startswith(f"actor/{actor}/")):
                        found.setdefault(_restriction_key(r), r)
            except CACHE_ERRORS as exc:
                self._redis_failed(exc)
                if not postgres_answered:
                    raise StoresUnavailable("postgres and redis are both unavailable") from None
        elif not postgres_answered:
            raise StoresUnavailable("postgres and redis are both unavailable")
        return sorted(found.values(), key=lambda r: r.started)

    async def approvals(self, alerts: Sequence[str]) -> list[Approval]:
        try:
            return await self._from_postgres(lambda: self.postgres.approvals(alerts))
        except ConnectionError:
            return []  # an approval cannot be used while PostgreSQL is down

    async def target_effectiveness(self, target: TargetRef) -> dict[str, float]:
        try:
            return await self._from_postgres(lambda: self.postgres.target_effectiveness(target))
        except ConnectionError:
            return {}

    # --- writes -------------------------------------------------------------------------------

    async def remember(self, effects: Effects, *, now: datetime.datetime) -> str:
        """Write a decision's effects; return where they went: postgres, redis (outbox) or spool."""
        where = "postgres"
        try:
            await self._from_postgres(lambda: self.postgres.write_effects(effects))
        except ConnectionError:
            if self.outbox is None:
                raise
            where = await self.outbox.push(effects, redis_ok=self.redis_up)
            self.outbox_pending = True
        except asyncpg.PostgresError:
            # The database refused the data itself (not an outage): retrying would fail forever.
            # The answer already given stands; the bundle is logged whole so nothing is silently lost.
            logger.exception("postgres refused decision %s; effects: %s", effects.uid,
                             json.dumps(effects.to_json(), sort_keys=True))
            where = "refused"
        await self._cache_effects(effects, now=now)
        return where

    async def _cache_effects(self, effects: Effects, *, now: datetime.datetime) -> None:
        if self.cache is None or not self.redis_up:
            return
        try:
            async with self.cache.client.pipeline(transaction=False) as pipe:  # one round trip
                if effects.record:
                    event = effects.event
                    if event.target is not None:
                        await self.cache.append(pipe, "target", event.target.key, event, now=now)
                    await self.cache.append(pipe, "actor", event.actor, event, now=now)
                if effects.restriction is not None and self.mirror is not None:
                    self.mirror.add(pipe, json.dumps(effects.restriction.to_json(), sort_keys=True),
                                    until=effects.restriction.until, now=now, memory=RESTRICTION_MEMORY)
                if len(pipe):
                    await pipe.execute()
        except CACHE_ERRORS as exc:
            self._redis_failed(exc)

    async def forget_target(self, target: TargetRef) -> None:
        """Drop the cached copy after history changed underneath it (an effectiveness score, say)."""
        if self.cache is not None:
            try:
                await self.cache.invalidate("target", target.key)
            except CACHE_ERRORS:
                pass

    # --- serialization ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serialized(self, names: Sequence[str]) -> AsyncIterator[None]:
        """Hold every named lock across replicas: Redis locks taken all at once, else PostgreSQL
        advisory locks in the given order, else none (the decision then fails open or closed)."""
        releases = await self._acquire(names) if names else []
        try:
            yield
        finally:
            for release in reversed(releases):
                try:
                    await release()
                except (*CACHE_ERRORS, *POSTGRES_ERRORS) as exc:
                    logger.warning("could not release a lock (it expires by itself): %s", exc)

    async def _acquire(self, names: Sequence[str]) -> list[Callable[[], Awaitable[None]]]:
        if self.cache is not None and self.redis_up:
            cache = self.cache
            try:
                token = await cache.acquire_lock(*names)
                return [lambda: cache.release_lock(*names, token=token)]
            except LockTimeout:
                logger.warning("locks %s busy too long; deciding without them", ", ".join(names))
                return []
            except CACHE_ERRORS as exc:
                self._redis_failed(exc)
        releases: list[Callable[[], Awaitable[None]]] = []
        for name in names:
            if not self.postgres_up:
                break
            try:
                releases.append(await self._advisory_lock(name))
            except LockTimeout:
                logger.warning("advisory lock %s busy too long; deciding without it", name)
            except POSTGRES_ERRORS as exc:
                self._postgres_failed(exc)
        return releases

    async def _advisory_lock(self, name: str, *, wait: float = 2.5) -> Callable[[], Awaitable[None]]:
        key = zlib.crc32(f"{self.postgres.cluster_id}:{name}".encode()) - 2**31
        connection = await self.postgres.pool.acquire(timeout=2)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                if loop.time() >= deadline:
                    raise LockTimeout(f"advisory lock {name} busy for {wait}s")
                await asyncio.sleep(0.005)
        except BaseException:
            await self.postgres.pool.release(connection)
            raise

        async def release() -> None:
            try:
                await connection.execute("SELECT pg_advisory_unlock($1)", key)
            except BaseException:
                connection.terminate()  # the lock must not outlive this use: end its session
                raise
            finally:
                await self.postgres.pool.release(connection)

        return release


def _restriction_key(r: Restriction) -> tuple[str, str, str, str]:
    return (r.scope, r.pattern.value, r.started.isoformat(), r.until.isoformat())
