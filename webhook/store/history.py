"""One front for every read and write the gate makes, with the fallbacks of DESIGN §7.

* Reads go to Redis and fall back to PostgreSQL; with PostgreSQL down a warm Redis key still
  answers, merged with what waits in the outbox. A window neither can give whole is still
  answered (from what the outbox holds) but marked ``Gap.COLD_CACHE`` so the gate can say so.
* Writes go to PostgreSQL in one idempotent transaction per decision; when it is down they go
  to the outbox (Redis stream, else an fsync'd local spool) and are replayed when it returns.
  A bundle PostgreSQL refuses is recorded in a storable form and kept whole as a dead letter.
* Decisions on one target are serialized by a Redis lock, or a PostgreSQL advisory lock on a
  pool of its own while Redis is down. A lock not had in time is ``LockBusy``, never an outage.
  The Redis lock script also reads the decision's windows once the locks are held, and the cache
  write releases them: two round trips to Redis per decision.
* With both stores down, ``StoresUnavailable`` tells the gate to fail open (or closed).

A store that failed is skipped (not retried on every request) until the background check
(``check``) sees it answer again; that keeps a dead store from adding a timeout to every
decision. Driver exceptions are translated into ``webhook.store.errors`` here and in
``postgres_error``; nothing above this module sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import redis.exceptions

from webhook import metrics
from webhook.actions.model import ActionEvent, TargetRef
from webhook.decision.state import ActorScope, Approval, Restriction, RestrictionScope
from webhook.store.cache import Command, RedisCache, RestrictionMirror, WindowRead, forget_warm_keys
from webhook.store.confirmation import ActionStatus, Proposed, Resolution, Subject
from webhook.store.effects import Effects
from webhook.store.errors import (
    Gap,
    LockBusy,
    Locking,
    PostgresConflict,
    PostgresUnavailable,
    RowRefused,
    StoreMode,
    StoresUnavailable,
)
from webhook.store.locks import AdvisoryLocks
from webhook.store.outbox import Outbox
from webhook.store.postgres import PostgresStore, postgres_error
from webhook.store.storable import escaped, storable

__all__ = ["CACHE_ERRORS", "DecisionReads", "Gap", "HistoryStore", "LockBusy", "Locking", "StoresUnavailable"]

logger = logging.getLogger(__name__)

# What redis-py raises when Redis cannot answer (its ConnectionError and TimeoutError derive
# from RedisError; sockets may still raise OSError directly). Only ever caught around Redis calls.
CACHE_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)
RESTRICTION_MEMORY = datetime.timedelta(hours=48)
# Seconds a decision waits for its locks. The API server gives the webhook 3s and, past that,
# admits the change unseen (failurePolicy: Ignore): the wait must leave time to decide and answer.
LOCK_WAIT = 1.5
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DecisionReads:
    """The history a decision under ``serialized`` is going to read: the target's events since
    ``target_since`` and, when given, the actor's since ``actor_since``. With the locks in Redis
    they come back in the round trip that takes the locks (issue 15: two round trips per decision,
    not four); ``target_events``/``actor_events`` then answer from them."""

    target: TargetRef
    target_since: datetime.datetime
    actor: str | None = None
    actor_since: datetime.datetime | None = None

    def windows(self) -> list[WindowRead]:
        reads = [WindowRead("target", self.target.key, self.target_since)]
        if self.actor is not None and self.actor_since is not None:
            reads.append(WindowRead("actor", self.actor, self.actor_since))
        return reads


class HistoryStore:
    def __init__(self, *, postgres: PostgresStore, cache: RedisCache | None, outbox: Outbox | None = None,
                 locks: AdvisoryLocks | None = None, lock_wait: float = LOCK_WAIT) -> None:
        self.postgres = postgres
        self.cache = cache
        self.outbox = outbox
        self.locks = locks
        self.lock_wait = lock_wait
        self.mirror = RestrictionMirror(cache) if cache is not None else None
        self.postgres_up = True
        self.redis_up = cache is not None
        self._redis_suspect = False
        # Redis lost what it held (restarted empty, flushed) while PostgreSQL could not refill it:
        # cached histories and the restriction mirror are incomplete until PostgreSQL is back.
        self.cache_cold = False
        # Whether decisions may still wait in the outbox (this replica's or another's): refreshed by
        # every upkeep check, set at once when this replica pushes, so the hot path never asks Redis.
        self.outbox_pending = False
        # Set when a watch on the cluster confirms admitted changes (``webhook.kube.confirmations``):
        # only then are they recorded as proposals. Without a cluster every admitted change counts.
        self.confirming = False

    # --- health -------------------------------------------------------------------------------

    def mode(self) -> StoreMode:
        """Which stores the gate is deciding with now."""
        if not self.postgres_up and not self.redis_up:
            return StoreMode.UNAVAILABLE
        if not self.postgres_up:
            return StoreMode.COLD_CACHE if self.cache_cold else StoreMode.POSTGRES_DOWN
        if self.cache is not None and not self.redis_up:
            return StoreMode.REDIS_DOWN
        return StoreMode.HEALTHY

    def _postgres_failed(self, exc: BaseException) -> None:
        if isinstance(exc, PostgresConflict):  # this call lost, PostgreSQL is fine
            logger.warning("postgres rolled a statement back: %s", exc)
            return
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
            await self._pg(lambda: asyncio.wait_for(self.postgres.ping(), 2), force=True)
            recovered = not self.postgres_up
            self.postgres_up = True
            if recovered:
                logger.info("postgres is back")
        except PostgresUnavailable as exc:
            self._postgres_failed(exc)
        if self.cache is not None:
            await self._check_cache()
        if self.postgres_up and self.outbox is not None:
            await self.drain()
        return {"postgres": self.postgres_up, **({"redis": self.redis_up} if self.cache is not None else {})}

    async def _check_cache(self) -> None:
        assert self.cache is not None
        try:
            await asyncio.wait_for(self.cache.ping(), 2)
            lost = not await self.cache.has_epoch()
            if self._redis_suspect or lost:
                removed = await forget_warm_keys(self.cache)
                logger.info("redis is back%s; %d cached histories will be rebuilt from postgres",
                            " without its data" if lost else "", removed)
                if self.postgres_up:
                    await self._resync_mirror()
                    await self.cache.set_epoch()
                    self.cache_cold = False
                else:
                    self.cache_cold = True  # nothing to rebuild from until PostgreSQL returns
                self._redis_suspect = False
            elif self.cache_cold and self.postgres_up:
                await self._resync_mirror()
                self.cache_cold = False
            self.redis_up = True
        except CACHE_ERRORS as exc:
            self._redis_failed(exc)
        except PostgresUnavailable as exc:
            self._postgres_failed(exc)

    async def _resync_mirror(self) -> None:
        """Writes that reached PostgreSQL while Redis was away are missing from the mirror."""
        if self.mirror is None:
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        found = await self._pg(lambda: self.postgres.restrictions_since(now - RESTRICTION_MEMORY))
        await self.mirror.replace_all([(json.dumps(r.to_json(), sort_keys=True), r.until) for r in found])

    async def drain(self) -> int:
        assert self.outbox is not None
        try:
            landed = await self.outbox.drain(self._replay, bury=self._bury_unreadable)
        except PostgresUnavailable as exc:
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

    async def _pg(self, query: Callable[[], Awaitable[T]], *, force: bool = False) -> T:
        """Run a PostgreSQL call with its failures translated: ``PostgresUnavailable`` (and the
        store marked down) or ``RowRefused``; anything else is a bug and propagates as is."""
        if not self.postgres_up and not force:
            raise PostgresUnavailable("postgres marked down")
        try:
            return await query()
        except Exception as exc:
            error = postgres_error(exc)
            if error is None:
                raise
            if isinstance(error, PostgresUnavailable):
                self._postgres_failed(error)
            if error is exc:
                raise
            raise error from exc

    async def target_events(self, target: TargetRef, *, since: datetime.datetime, now: datetime.datetime,
                            gaps: set[Gap] | None = None) -> list[ActionEvent]:
        events = await self._read("target", target.key, since=since, now=now, gaps=gaps,
                                  load=lambda horizon: self.postgres.target_events(target, since=horizon))
        # by key: a reader that names the target without its apiVersion (an MCP tool) sees the same events
        return await self._with_pending(events, since=since, target_key=target.key)

    async def actor_events(self, actor: str, *, since: datetime.datetime, now: datetime.datetime,
                           gaps: set[Gap] | None = None) -> list[ActionEvent]:
        events = await self._read("actor", actor, since=since, now=now, gaps=gaps,
                                  load=lambda horizon: self.postgres.actor_events(actor, since=horizon))
        return await self._with_pending(events, since=since, actor=actor)

    async def _read(self, kind: str, name: str, *, since: datetime.datetime, now: datetime.datetime,
                    gaps: set[Gap] | None,
                    load: Callable[[datetime.datetime], Awaitable[list[ActionEvent]]]) -> list[ActionEvent]:
        """Redis first (warming a cold key from PostgreSQL), else PostgreSQL; each store's failure
        caught only around its own calls, so one is never taken for the other."""
        cache_answered = False
        if self.cache is not None and self.redis_up:
            read_with_lock = _read_with_lock(kind, name, since=since)
            if read_with_lock is not None:
                cache_answered, cached = True, read_with_lock.events
            else:
                try:
                    cached = await self.cache.read(kind, name, since=since)
                    cache_answered = True
                except CACHE_ERRORS as exc:
                    self._redis_failed(exc)
                    cached = None
            if cached is not None:
                return cached
            if cache_answered and self.postgres_up:
                horizon = now - self.cache.horizon
                try:
                    events = await self._pg(lambda: load(horizon))
                except PostgresUnavailable:
                    pass
                else:
                    # Not while decisions may wait in the outbox: PostgreSQL lacks them until the drain,
                    # and a key filled now would hide them after it (replayed bundles are not cached).
                    if not self.outbox_pending:
                        try:
                            await self.cache.fill(kind, name, events, now=now)
                        except CACHE_ERRORS as exc:
                            self._redis_failed(exc)
                    return [event for event in events if event.at > since]
        if not cache_answered and self.postgres_up:
            try:
                return await self._pg(lambda: load(since))
            except PostgresUnavailable:
                pass
        if cache_answered:
            # PostgreSQL down and this key not cached: only what the outbox holds is known.
            _note(gaps, Gap.COLD_CACHE)
            return []
        raise StoresUnavailable("postgres and redis are both unavailable")

    async def _with_pending(self, events: list[ActionEvent], *, since: datetime.datetime,
                            target_key: str | None = None, actor: str | None = None) -> list[ActionEvent]:
        """Add admitted actions that wait in the outbox: history the database has not seen yet."""
        if self.outbox is None or (self.postgres_up and not self.outbox_pending):
            return events
        known = {event.uid for event in events}
        pending = []
        for entry in await self.outbox.waiting(target_key=target_key, actor=actor):
            if entry.record and entry.event.uid not in known and entry.event.at > since:
                known.add(entry.event.uid)
                pending.append(entry.event)
        return sorted([*events, *pending], key=lambda event: event.at) if pending else events

    async def restrictions(self, *, scopes: Sequence[RestrictionScope], actor: str | None, now: datetime.datetime,
                           gaps: set[Gap] | None = None) -> list[Restriction]:
        """Restrictions that ended within the memory window (expired ones feed resets and counts)."""
        since = now - RESTRICTION_MEMORY
        found: dict[tuple[str, str, str, str], Restriction] = {}
        postgres_answered = False
        try:
            for r in await self._pg(lambda: self.postgres.restrictions(scopes=scopes, actor=actor, since=since)):
                found[_restriction_key(r)] = r
            postgres_answered = True
        except PostgresUnavailable:
            pass
        # PostgreSQL is complete unless decisions wait in the outbox; only then (or without it)
        # does the Redis mirror have something to add.
        mirror_needed = not postgres_answered or self.outbox_pending
        if self.mirror is not None and self.redis_up and mirror_needed:
            try:
                for raw in await self.mirror.since(since):
                    r = Restriction.from_json(json.loads(raw))
                    if r.scope in scopes or (actor and isinstance(r.scope, ActorScope) and r.scope.actor == actor):
                        found.setdefault(_restriction_key(r), r)
                if not postgres_answered and self.cache_cold:
                    _note(gaps, Gap.COLD_CACHE)  # the mirror lost what Redis lost
            except CACHE_ERRORS as exc:
                self._redis_failed(exc)
                if not postgres_answered:
                    raise StoresUnavailable("postgres and redis are both unavailable") from None
        elif not postgres_answered:
            raise StoresUnavailable("postgres and redis are both unavailable")
        return sorted(found.values(), key=lambda r: r.started)

    async def approvals(self, alerts: Sequence[str]) -> list[Approval]:
        try:
            return await self._pg(lambda: self.postgres.approvals(alerts))
        except PostgresUnavailable:
            return []  # an approval cannot be used while PostgreSQL is down

    async def target_effectiveness(self, target: TargetRef) -> dict[str, float]:
        try:
            return await self._pg(lambda: self.postgres.target_effectiveness(target))
        except PostgresUnavailable:
            return {}

    async def in_postgres(self, query: Callable[[], Awaitable[T]]) -> T:
        """Run a repository call (detections, effectiveness, the action log: SQL outside the decision
        path) with the store's own failure handling: ``PostgresUnavailable`` at once while PostgreSQL
        is marked down, and the store marked down when the call finds it gone, so the gate, the API
        and the MCP tools share one view of the outage."""
        return await self._pg(query)

    # --- writes -------------------------------------------------------------------------------

    async def remember(self, effects: Effects, *, now: datetime.datetime) -> str:
        """Write a decision's effects; return where they went: postgres, redis (outbox), spool,
        or dead-letter (PostgreSQL refused them; see ``_refused``)."""
        try:
            where, new = await self._land(effects)
        except PostgresUnavailable:
            if self.outbox is None:
                raise
            where = await self.outbox.push(effects, redis_ok=self.redis_up)
            self.outbox_pending = True
            metrics.OUTBOX_DEPTH.inc()  # visible at once; the upkeep check sets the exact depth
            await self._cache_effects(effects, now=now, once=True)
            return where
        if new:  # a request uid seen before changes nothing, in PostgreSQL or in the cache
            await self._cache_effects(effects, now=now)
        return where

    async def _land(self, effects: Effects) -> tuple[str, bool]:
        """Write to PostgreSQL: (where, whether it was new). Raises only ``PostgresUnavailable``."""
        try:
            return "postgres", await self._pg(lambda: self.postgres.write_effects(effects))
        except RowRefused as refusal:
            return "dead-letter", await self._refused(effects, refusal)

    async def _replay(self, effects: Effects) -> bool:
        _, new = await self._land(effects)
        return new

    async def _refused(self, effects: Effects, refusal: RowRefused) -> bool:
        """PostgreSQL refused the data itself. Retrying would fail forever and block every entry
        behind it, so: record a storable copy (the action still counts as history), keep the
        original whole as a dead letter with the reason, count it. Returns whether the copy is new."""
        resolution, new = "held", False
        clean = storable(effects)
        if clean != effects:
            try:
                new = await self._pg(lambda: self.postgres.write_effects(clean))
                resolution = "sanitized"
            except RowRefused as again:
                logger.error("postgres refused even the sanitized decision %s: %s", effects.uid, again)
        await self._bury(effects.uid, reason=str(refusal), sqlstate=refusal.sqlstate, resolution=resolution,
                         payload=escaped(effects), decided_at=effects.decided_at)
        return new

    async def _bury_unreadable(self, raw: str, reason: str) -> None:
        """An outbox entry that cannot even be parsed (a torn spool line, say)."""
        digest = hashlib.sha256(raw.encode("utf-8", errors="replace")).hexdigest()[:32]
        await self._bury(f"unreadable:{digest}", reason=reason, sqlstate=None, resolution="held",
                         payload=json.dumps(raw, ensure_ascii=True), decided_at=None)

    async def _bury(self, uid: str, *, reason: str, sqlstate: str | None, resolution: str, payload: str,
                    decided_at: datetime.datetime | None) -> None:
        """Keep a dead letter in PostgreSQL. If PostgreSQL is gone now, ``PostgresUnavailable``
        propagates: the bundle then stays where it was (the outbox) or goes there, and is refused
        and buried again when PostgreSQL returns."""
        reason = reason.replace("\x00", "\\0")[:2000]
        try:
            inserted = await self._pg(lambda: self.postgres.insert_dead_letter(
                request_uid=uid, reason=reason, sqlstate=sqlstate, resolution=resolution, payload=payload,
                decided_at=decided_at))
        except RowRefused as exc:  # cannot happen with an ASCII payload; never drop it silently
            logger.critical("cannot keep dead letter %s (%s); bundle: %s", uid, exc, payload)
            inserted = True
        if inserted:
            metrics.DEAD_LETTERS.labels(resolution=resolution).inc()
            logger.error("postgres refused decision %s (%s); kept as a dead letter (%s)", uid, reason, resolution)

    async def _cache_effects(self, effects: Effects, *, now: datetime.datetime, once: bool = False) -> None:
        if self.cache is None or not self.redis_up:
            return
        commands: list[Command] = []
        if effects.record:
            event = effects.event
            member = json.dumps(event.to_json(), sort_keys=True)
            if event.target is not None:
                commands.append(self.cache.append("target", event.target.key, event, member=member, now=now,
                                                  once=once))
            commands.append(self.cache.append("actor", event.actor, event, member=member, now=now, once=once))
        if effects.restriction is not None and self.mirror is not None:
            commands += self.mirror.add(json.dumps(effects.restriction.to_json(), sort_keys=True),
                                        until=effects.restriction.until, now=now, memory=RESTRICTION_MEMORY)
        if not commands:
            return
        lock = _held.get()
        if lock is not None and lock.released:
            lock = None
        if lock is not None:  # the decision's last write: let go of its locks in the same round trip
            commands.append(lock.release_command())
        try:
            await self.cache.batch(commands)
            if lock is not None:
                lock.released = True
        except CACHE_ERRORS as exc:
            self._redis_failed(exc)

    async def forget_target(self, target: TargetRef) -> None:
        """Drop the cached copy after history changed underneath it (an effectiveness score, say)."""
        if self.cache is not None:
            try:
                await self.cache.invalidate("target", target.key)
            except CACHE_ERRORS:
                pass

    # --- truthful history ---------------------------------------------------------------------

    async def propose(self, proposed: Proposed) -> bool:
        """Note an admitted change as waiting for the cluster. When PostgreSQL cannot take the note
        the action simply counts, as without a cluster: a missed note may never hide a change."""
        try:
            await self._pg(lambda: self.postgres.propose(proposed))
            return True
        except (PostgresUnavailable, RowRefused) as exc:
            logger.warning("could not note %s as proposed (it counts unconfirmed): %s", proposed.uid, exc)
            return False

    async def pending(self, subject: Subject) -> list[Proposed]:
        return await self._pg(lambda: self.postgres.pending(kind=subject.kind, namespace=subject.namespace,
                                                            name=subject.name))

    async def expired_proposals(self, *, before: datetime.datetime, kinds: Sequence[str]) -> list[str]:
        return await self._pg(lambda: self.postgres.expired_proposals(before=before, kinds=kinds))

    async def resolve(self, resolutions: Sequence[Resolution], *, now: datetime.datetime) -> int:
        """Settle proposals; what turned out not-applied leaves every cached history it was in, and
        restrictions started on it are withdrawn (also from the Redis mirror). Returns how many
        proposals became not-applied."""
        stale, withdrawn = await self._pg(lambda: self.postgres.resolve(resolutions, at=now))
        for target_key, actor in stale:
            if self.cache is not None and self.redis_up:
                try:
                    if target_key:
                        await self.cache.invalidate("target", target_key)
                    await self.cache.invalidate("actor", actor)
                except CACHE_ERRORS as exc:
                    self._redis_failed(exc)
        if withdrawn:
            logger.warning("withdrew %d restriction(s) started on changes that never landed", withdrawn)
            if self.cache is not None and self.redis_up:
                try:
                    await self._resync_mirror()
                except CACHE_ERRORS as exc:
                    self._redis_failed(exc)
        return len(stale)

    async def statuses(self, uids: Sequence[str]) -> dict[str, ActionStatus]:
        return await self._pg(lambda: self.postgres.statuses(uids))

    # --- serialization ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serialized(self, names: Sequence[str], *, required: bool = False,
                         reads: DecisionReads | None = None) -> AsyncIterator[Locking]:
        """Hold every named lock across replicas: Redis locks taken all at once, else PostgreSQL
        advisory locks in the given order, else none (no store: the decision fails open or closed).
        With Redis locks, the windows of ``reads`` come with them (see ``DecisionReads``).

        Locks held by others past the wait budget: with ``required`` (automation, whose changes a
        decision may refuse) ``LockBusy`` is raised, to be answered with a retryable refusal; without
        it the block runs unlocked — right for actors the gate never refuses (people, observed
        actors), whose action must still be recorded — and is told so by ``Locking.BUSY``.
        """
        state, release = Locking.NO_STORE, None
        if names:
            try:
                release = await self._acquire(names, windows=reads.windows() if reads is not None else [])
                state = Locking.HELD if release is not None else Locking.NO_STORE
            except LockBusy as busy:
                if required:
                    raise
                logger.warning("%s; going ahead without them (this actor is never refused)", busy)
                state = Locking.BUSY
        held = _held.set(release if isinstance(release, RedisLock) else None)
        try:
            yield state
        finally:
            _held.reset(held)
            if release is not None and not (isinstance(release, RedisLock) and release.released):
                try:
                    await release()
                except CACHE_ERRORS as exc:
                    logger.warning("could not release a lock (it expires by itself): %s", exc)

    async def _acquire(self, names: Sequence[str], *,
                       windows: Sequence[WindowRead]) -> Callable[[], Awaitable[None]] | None:
        if self.cache is not None and self.redis_up:
            cache = self.cache
            try:
                held = await cache.acquire_lock(*names, windows=windows, wait=self.lock_wait)
                return RedisLock(cache=cache, names=tuple(names), token=held.token, windows=held.windows)
            except CACHE_ERRORS as exc:
                self._redis_failed(exc)
        if not self.postgres_up:
            return None
        if self.locks is None:
            raise LockBusy("redis is down and no postgres lock pool is configured")
        try:
            return await self.locks.acquire(names, wait=self.lock_wait)
        except PostgresConflict as exc:  # PostgreSQL is up: never decide unlocked, ask for a retry
            raise LockBusy(f"lock {', '.join(names)}: {exc}") from exc
        except PostgresUnavailable as exc:
            self._postgres_failed(exc)
            return None


@dataclasses.dataclass
class RedisLock:
    """Locks held in Redis for one decision, and the windows read as they were taken (each
    answers one read, while the locks are held). The decision's cache write releases them in its
    own round trip (``release_command``); ``serialized`` releases them otherwise (no cache write,
    or it failed)."""

    cache: RedisCache
    names: tuple[str, ...]
    token: str
    windows: dict[WindowRead, list[ActionEvent] | None] = dataclasses.field(default_factory=dict)
    released: bool = False

    def release_command(self) -> Command:
        """The release, for the caller's batch; the caller sets ``released`` once it ran."""
        return self.cache.release(*self.names, token=self.token)

    async def __call__(self) -> None:
        await self.cache.release_lock(*self.names, token=self.token)
        self.released = True


#: The Redis locks of the decision running in this task, while ``serialized`` holds them.
_held: contextvars.ContextVar[RedisLock | None] = contextvars.ContextVar("safety_gate_held_lock", default=None)


@dataclasses.dataclass(frozen=True)
class _Window:
    events: list[ActionEvent] | None  # None: the key was cold


def _read_with_lock(kind: str, name: str, *, since: datetime.datetime) -> _Window | None:
    """The window of ``kind``/``name`` read with this task's locks, if one was and covers ``since``;
    taken once (a second read, or one after the locks went, goes to Redis again)."""
    lock = _held.get()
    if lock is None or lock.released:
        return None
    for window in list(lock.windows):
        if window.kind == kind and window.name == name and window.since <= since:
            events = lock.windows.pop(window)
            return _Window(None if events is None else [event for event in events if event.at > since])
    return None


def _note(gaps: set[Gap] | None, gap: Gap) -> None:
    if gaps is not None:
        gaps.add(gap)


def _restriction_key(r: Restriction) -> tuple[str, str, str, str]:
    return (str(r.scope), r.pattern.value, r.started.isoformat(), r.until.isoformat())
