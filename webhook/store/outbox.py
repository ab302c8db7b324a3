"""Effects that could not reach PostgreSQL wait here until it returns (DESIGN §7).

Two places, in order of preference: a Redis stream shared by every replica, and when Redis
is down too, a local append-only spool file that is fsync'd before the admission response
goes out. The drain replays both, oldest first; ``PostgresStore.write_effects`` is
idempotent by request uid, so an entry replayed twice still lands once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
from collections.abc import Awaitable, Callable
from typing import cast

import redis.asyncio as aioredis

from webhook.store.effects import Effects

logger = logging.getLogger(__name__)

Writer = Callable[[Effects], Awaitable[bool]]
Burier = Callable[[str, str], Awaitable[None]]  # (the raw entry, why it cannot be read)


def _parse(raw: str) -> Effects | str:
    """The entry, or why it cannot be read (a line torn by a crash mid-write, say)."""
    try:
        return Effects.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable outbox entry: {type(exc).__name__}: {exc}"


class Outbox:
    def __init__(self, *, redis: aioredis.Redis | None, stream: str, spool: pathlib.Path) -> None:
        self.redis = redis
        self.stream = stream
        self.spool = spool
        self._spool_lock = asyncio.Lock()

    async def push(self, effects: Effects, *, redis_ok: bool = True) -> str:
        """Keep ``effects`` durably; returns where: ``redis`` or ``spool``."""
        payload = json.dumps(effects.to_json(), sort_keys=True)
        if self.redis is not None and redis_ok:
            try:
                # WAIT is not used: a Redis stream with appendonly is the shared, replicated-enough buffer.
                await self.redis.xadd(self.stream, {"effects": payload})
                return "redis"
            except (aioredis.RedisError, OSError) as exc:
                logger.warning("redis outbox unavailable, spooling %s locally: %s", effects.uid, exc)
        async with self._spool_lock:
            await asyncio.to_thread(self._append_spool, payload)
        return "spool"

    def _append_spool(self, payload: str) -> None:
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spool, "a", encoding="utf-8") as handle:
            handle.write(payload + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    async def pending(self) -> list[Effects]:
        """Everything waiting, oldest first (spool entries are older than anything pushed after Redis returned)."""
        raw = list(await self._spool_lines())
        if self.redis is not None:
            try:
                entries = cast("list[tuple[str, dict[str, str]]]", await self.redis.xrange(self.stream, "-", "+"))
                raw.extend(fields.get("effects", "") for _, fields in entries)
            except (aioredis.RedisError, OSError):
                pass
        return [entry for entry in map(_parse, raw) if not isinstance(entry, str)]

    async def depth(self) -> int:
        depth = len(await self._spool_lines())
        if self.redis is not None:
            try:
                depth += await self.redis.xlen(self.stream)
            except (aioredis.RedisError, OSError):
                pass
        return depth

    async def drain(self, write: Writer, *, bury: Burier, batch: int = 200) -> int:
        """Replay waiting effects through ``write``, oldest first; returns how many were handled.

        ``write`` raises only when PostgreSQL is unavailable (the drain stops there and resumes on
        the next call); an entry the database refuses is the writer's to dead-letter, and an entry
        that cannot be parsed goes to ``bury``. Either way it leaves the outbox, so no entry can
        hold up the ones behind it.
        """
        landed = await self._drain_spool(write, bury)
        if self.redis is None:
            return landed
        while True:
            entries = cast("list[tuple[str, dict[str, str]]]",
                           await self.redis.xrange(self.stream, "-", "+", count=batch))
            if not entries:
                return landed
            for entry_id, fields in entries:
                await self._replay_one(fields.get("effects", ""), write, bury)
                await self.redis.xdel(self.stream, entry_id)
                landed += 1

    @staticmethod
    async def _replay_one(raw: str, write: Writer, bury: Burier) -> None:
        entry = _parse(raw)
        if isinstance(entry, str):
            await bury(raw, entry)
        else:
            await write(entry)

    async def _drain_spool(self, write: Writer, bury: Burier) -> int:
        async with self._spool_lock:
            lines = await self._spool_lines()
            done = 0
            try:
                for line in lines:
                    await self._replay_one(line, write, bury)
                    done += 1
            finally:
                if done:
                    await asyncio.to_thread(self._rewrite_spool, lines[done:])
            return done

    async def _spool_lines(self) -> list[str]:
        def read() -> list[str]:
            try:
                text = self.spool.read_text(encoding="utf-8")
            except FileNotFoundError:
                return []
            return [line for line in text.splitlines() if line.strip()]

        return await asyncio.to_thread(read)

    def _rewrite_spool(self, remaining: list[str]) -> None:
        if not remaining:
            self.spool.unlink(missing_ok=True)
            return
        temporary = self.spool.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in remaining))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.spool)
