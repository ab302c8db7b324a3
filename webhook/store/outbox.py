"""Effects that could not reach PostgreSQL wait here until it returns (DESIGN §7).

Two places, in order of preference: a Redis stream shared by every replica, and when Redis
is down too, a local append-only spool file that is fsync'd before the admission response
goes out. The drain replays both, oldest first; ``PostgresStore.write_effects`` is
idempotent by request uid, so an entry replayed twice still lands once.

While entries wait, every decision asks for those of its target and actor (``waiting``). The
stream can hold tens of thousands of entries after an outage, and reading and parsing all of them
for every decision saturated Redis and the gate (issue 15), so each process keeps a view of the
stream by target and actor and reads only the entries added since its last look. The drain goes in
bounded batches, deletes each batch in one round trip, and rests between batches as long as the
batch took, so at most about half of the gate's time goes to it while decisions keep coming.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import pathlib
import time
from collections.abc import Awaitable, Callable, Iterable
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


def _readable(raw: Iterable[str]) -> list[Effects]:
    """The entries that parse (an unreadable one is the drain's to bury, never a reader's history)."""
    return [entry for entry in map(_parse, raw) if not isinstance(entry, str)]


#: Entries read per XRANGE, by the drain and by the view alike: one reply stays small.
BATCH = 200


@dataclasses.dataclass
class _View:
    """The entries of the stream this process has read, by target key and by actor. Entries the
    drain has since written stay in it until the stream is seen empty: a reader drops events
    PostgreSQL already returned by uid, so an entry seen twice counts once."""

    last_id: str = "0-0"
    by_target: dict[str, list[Effects]] = dataclasses.field(default_factory=dict)
    by_actor: dict[str, list[Effects]] = dataclasses.field(default_factory=dict)

    def add(self, effects: Effects) -> None:
        event = effects.event
        if event.target is not None:
            self.by_target.setdefault(event.target.key, []).append(effects)
        self.by_actor.setdefault(event.actor, []).append(effects)


class Outbox:
    def __init__(self, *, redis: aioredis.Redis | None, stream: str, spool: pathlib.Path,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """``clock`` and ``sleep`` pace the drain (parameters so a test can see the rests without waiting)."""
        self.redis = redis
        self.stream = stream
        self.spool = spool
        self._spool_lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep
        self._view = _View()
        self._view_lock = asyncio.Lock()

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
        return _readable(raw)

    async def waiting(self, *, target_key: str | None = None, actor: str | None = None) -> list[Effects]:
        """What waits for this target (by key) or this actor, oldest first: the spool's entries and
        the stream's, the latter from the view after reading only what was added since the last look."""
        spooled = _readable(await self._spool_lines())
        found = [e for e in spooled if _concerns(e, target_key=target_key, actor=actor)]
        if self.redis is not None:
            try:
                await self._catch_up()
            except (aioredis.RedisError, OSError):
                pass  # what the view already holds still counts
            view = self._view
            found.extend(view.by_target.get(target_key, []) if target_key is not None else
                         view.by_actor.get(actor, []) if actor is not None else [])
        return found

    async def _catch_up(self) -> None:
        assert self.redis is not None
        async with self._view_lock:  # concurrent decisions share one read of what is new
            while True:
                entries = cast("list[tuple[str, dict[str, str]]]", await self.redis.xrange(
                    self.stream, f"({self._view.last_id}", "+", count=BATCH))
                for entry_id, fields in entries:
                    entry = _parse(fields.get("effects", ""))
                    if not isinstance(entry, str):
                        self._view.add(entry)
                    self._view.last_id = entry_id
                if len(entries) < BATCH:
                    return

    def forget_view(self) -> None:
        """The stream was seen empty: nothing the view holds still waits."""
        self._view = _View(last_id=self._view.last_id)

    async def depth(self) -> int:
        depth = len(await self._spool_lines())
        if self.redis is not None:
            try:
                stream = await self.redis.xlen(self.stream)
            except (aioredis.RedisError, OSError):
                return depth
            if not stream:
                self.forget_view()
            depth += stream
        return depth

    async def drain(self, write: Writer, *, bury: Burier, batch: int = BATCH) -> int:
        """Replay waiting effects through ``write``, oldest first; returns how many were handled.

        ``write`` raises only when PostgreSQL is unavailable (the drain stops there and resumes on
        the next call); an entry the database refuses is the writer's to dead-letter, and an entry
        that cannot be parsed goes to ``bury``. Either way it leaves the outbox, so no entry can
        hold up the ones behind it. Stream entries go ``batch`` at a time; the written ones of a
        batch are deleted together (also when a write stops the batch half-way), then the drain
        rests as long as the batch took.
        """
        landed = await self._drain_spool(write, bury)
        if self.redis is None:
            return landed
        while True:
            entries = cast("list[tuple[str, dict[str, str]]]",
                           await self.redis.xrange(self.stream, "-", "+", count=batch))
            if not entries:
                return landed
            began = self._clock()
            done: list[str] = []
            try:
                for entry_id, fields in entries:
                    await self._replay_one(fields.get("effects", ""), write, bury)
                    done.append(entry_id)
            finally:
                if done:
                    await self.redis.xdel(self.stream, *done)
                    landed += len(done)
            if len(entries) < batch:
                return landed
            await self._sleep(max(0.0, self._clock() - began))

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


def _concerns(effects: Effects, *, target_key: str | None, actor: str | None) -> bool:
    event = effects.event
    if target_key is not None:
        return event.target is not None and event.target.key == target_key
    return actor is not None and event.actor == actor
