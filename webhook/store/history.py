"""Reads go to Redis and fall back to PostgreSQL; writes go to PostgreSQL, then the cache."""

from __future__ import annotations

import datetime
import logging

import redis.exceptions

from webhook.actions.model import ActionEvent, TargetRef
from webhook.store.cache import RedisCache
from webhook.store.postgres import PostgresStore

logger = logging.getLogger(__name__)

CACHE_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)


class HistoryStore:
    def __init__(self, *, postgres: PostgresStore, cache: RedisCache | None) -> None:
        self.postgres = postgres
        self.cache = cache

    async def target_events(self, target: TargetRef, *, since: datetime.datetime,
                            now: datetime.datetime) -> list[ActionEvent]:
        return await self._read("target", target.key, since=since, now=now,
                                load=lambda horizon: self.postgres.target_events(target, since=horizon))

    async def actor_events(self, actor: str, *, since: datetime.datetime,
                           now: datetime.datetime) -> list[ActionEvent]:
        return await self._read("actor", actor, since=since, now=now,
                                load=lambda horizon: self.postgres.actor_events(actor, since=horizon))

    async def _read(self, kind: str, name: str, *, since, now, load) -> list[ActionEvent]:  # type: ignore[no-untyped-def]
        if self.cache is not None:
            try:
                cached = await self.cache.read(kind, name, since=since)
                if cached is not None:
                    return cached
                horizon = now - self.cache.horizon
                events = await load(horizon)
                await self.cache.fill(kind, name, events, now=now)
                return [event for event in events if event.at > since]
            except CACHE_ERRORS as exc:
                logger.warning("redis unavailable, reading history from postgres: %s", exc)
        return await load(since)

    async def record(self, event: ActionEvent, *, now: datetime.datetime) -> ActionEvent:
        action_id = await self.postgres.record_action(event)
        recorded = event.replace(action_id=action_id)
        if self.cache is not None:
            try:
                if recorded.target is not None:
                    await self.cache.append("target", recorded.target.key, recorded, now=now)
                await self.cache.append("actor", recorded.actor, recorded, now=now)
            except CACHE_ERRORS as exc:
                logger.warning("redis unavailable, event %s cached on next read: %s", event.uid, exc)
        return recorded

    async def forget_target(self, target: TargetRef) -> None:
        """Drop the cached copy after history changed underneath it (an effectiveness score, say)."""
        if self.cache is not None:
            try:
                await self.cache.invalidate("target", target.key)
            except CACHE_ERRORS:
                pass
