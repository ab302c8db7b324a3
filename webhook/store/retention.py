"""The SQL of retention (DESIGN §7): the leader lock, the run's ``retention_operations`` row,
per-target compaction, untargeted expiry and the monthly partitions.

``webhook.retention.runner`` decides what goes (with the pure planner); this module only reads
and deletes what it is told, so the store layer keeps every statement on the history.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import enum
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

#: How long partition DDL waits for a table lock before giving up until the next run.
DDL_LOCK_TIMEOUT = "2s"
#: How long a detach waits, mostly for the transactions already using the parent to end. Nothing
#: queues behind that wait (see ``drop_partition``), so it may be longer; past it the partition is
#: left pending and finalized on the next run.
DETACH_LOCK_TIMEOUT = "30s"


class PartitionState(str, enum.Enum):
    ATTACHED = "attached"
    DETACH_PENDING = "detach-pending"   # a DETACH ... CONCURRENTLY stopped half-way
    DETACHED = "detached"               # detached, not yet dropped


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionTable:
    name: str
    state: PartitionState


@dataclasses.dataclass(frozen=True, slots=True)
class DroppedRows:
    """The rows a dropped partition still held: all of them, and this cluster's."""

    rows: int
    ours: int


@dataclasses.dataclass(frozen=True, slots=True)
class TargetLimits:
    """A target over its ``max_actions`` or holding actions older than its ``max_age_days``."""

    history_id: int
    namespace: str
    max_actions: int
    max_age_days: int
    compaction_strategy: str
    actions: int          # its traces: exact when over max_actions, else an upper bound within it


@dataclasses.dataclass(frozen=True, slots=True)
class KeptTrace:
    """What the planner needs of one recorded action."""

    id: int
    at: datetime.datetime
    action_type: str
    score: float | None
    is_pattern_example: bool


def _count(status: str) -> int:
    """Rows touched, from asyncpg's command status (``DELETE 3``, ``UPDATE 0``)."""
    return int(status.split()[-1])


class RetentionRepository:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    @contextlib.asynccontextmanager
    async def leader(self, name: str) -> AsyncIterator[bool]:
        """Whether this process holds the session advisory lock ``name`` for the block; a crashed
        leader's lock dies with its session."""
        async with self.pool.acquire() as connection:
            held = await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", name)
            try:
                yield bool(held)
            finally:
                if held:
                    await connection.execute("SELECT pg_advisory_unlock(hashtext($1))", name)

    async def open_operation(self, *, strategy: str) -> int:
        return await self.pool.fetchval(
            "INSERT INTO retention_operations (cluster_id, strategy, namespace, started_at)"
            " VALUES ($1, $2, NULL, clock_timestamp()) RETURNING id",
            self.cluster_id, strategy)

    async def close_operation(self, operation_id: int, *, actions_removed: int, partitions_dropped: Sequence[str],
                              result: str, details: dict[str, Any]) -> None:
        await self.pool.execute(
            "UPDATE retention_operations SET finished_at = clock_timestamp(), actions_removed = $2,"
            " partitions_dropped = $3, result = $4, details = $5 WHERE id = $1",
            operation_id, actions_removed, list(partitions_dropped), result, details)

    async def mark_pattern_examples(self) -> int:
        """Mark the actions named in detections' evidence (the trigger of migration 0003 does it as
        detections are written; this catches anything it could not see)."""
        return _count(await self.pool.execute(
            """
            UPDATE resource_action_traces t SET is_pattern_example = true
            FROM (SELECT DISTINCT e->>'requestUid' AS request_uid
                  FROM oscillation_detections d, jsonb_array_elements(d.evidence) AS e
                  WHERE d.cluster_id = $1 AND jsonb_typeof(d.evidence) = 'array' AND e ? 'requestUid') AS x
            WHERE t.cluster_id = $1 AND t.request_uid = x.request_uid AND NOT t.is_pattern_example
            """,
            self.cluster_id))

    async def history_ids(self) -> tuple[int, int] | None:
        """The lowest and highest history id of this cluster (None: no history): the range a run
        walks in pages."""
        row = await self.pool.fetchrow(
            "SELECT min(id) AS low, max(id) AS high FROM action_histories WHERE cluster_id = $1", self.cluster_id)
        return None if row["low"] is None else (row["low"], row["high"])

    async def targets_over_limits(self, *, now: datetime.datetime, first: int, last: int) -> list[TargetLimits]:
        """Targets with history ids in ``first..last`` over their count, or holding something past
        their age, without counting every target's traces (issue 15: those counts took 23.5 s of
        a 55 s run over 10M actions).

        Age: one index probe per target for a trace older than its ``max_age_days`` (partitions
        newer than the cutoff are pruned), so only expired rows are read. Count: the history's
        ``action_count`` (migration 0012) is an upper bound kept by the decision's write; only a
        target whose counter exceeds ``max_actions`` is counted exactly, in the same statement and
        so the same snapshot as its counter, and the excess seen there is taken off the counter
        (a subtraction, so a decision's increment made meanwhile stays). Correct only while one
        process deletes this cluster's traces at a time: the run's leader lock.
        """
        rows = await self.pool.fetch(
            """
            SELECT p.id, p.max_actions, p.max_age_days, p.compaction_strategy, p.namespace, p.action_count, p.n,
                   p.expired
            FROM (
                SELECT h.id, h.max_actions, h.max_age_days, h.compaction_strategy, r.namespace, h.action_count,
                       CASE WHEN h.action_count > h.max_actions THEN (
                           SELECT count(*) FROM resource_action_traces t
                           WHERE t.cluster_id = h.cluster_id AND t.action_history_id = h.id) END AS n,
                       EXISTS (SELECT 1 FROM resource_action_traces t
                               WHERE t.cluster_id = h.cluster_id AND t.action_history_id = h.id
                                 AND t.action_timestamp < $2::timestamptz - make_interval(days => h.max_age_days))
                           AS expired
                FROM action_histories h JOIN resource_references r ON r.id = h.resource_id
                WHERE h.cluster_id = $1 AND h.id BETWEEN $3 AND $4) AS p
            WHERE p.n IS NOT NULL OR p.expired
            ORDER BY p.id
            """,
            self.cluster_id, now, first, last)
        recounted = [row for row in rows if row["n"] is not None and row["n"] != row["action_count"]]
        if recounted:
            await self.pool.execute(
                "UPDATE action_histories h SET action_count = h.action_count - d.excess"
                " FROM unnest($1::bigint[], $2::bigint[]) AS d (id, excess) WHERE h.id = d.id",
                [row["id"] for row in recounted], [row["action_count"] - row["n"] for row in recounted])
        return [TargetLimits(history_id=row["id"], namespace=row["namespace"], max_actions=row["max_actions"],
                             max_age_days=row["max_age_days"], compaction_strategy=row["compaction_strategy"],
                             actions=row["action_count"] if row["n"] is None else row["n"])
                for row in rows
                if row["n"] is None or row["n"] > row["max_actions"] or row["expired"]]

    async def traces(self, history_ids: Sequence[int], *,
                     before: Sequence[datetime.datetime | None]) -> dict[int, list[KeptTrace]]:
        """The traces of many targets in one query (issue 15: one query per target was 100,000 round
        trips over 10M actions), by history id; a target with none is absent. ``before`` holds one
        bound per target: only its traces older than that (None: all of them), an index range
        that reads no more than those rows."""
        rows = await self.pool.fetch(
            """
            SELECT t.action_history_id, t.id, t.action_timestamp, t.action_type,
                   t.effectiveness_score::float8 AS score, t.is_pattern_example
            FROM unnest($2::bigint[], $3::timestamptz[]) AS k (history_id, before)
            JOIN resource_action_traces t ON t.cluster_id = $1 AND t.action_history_id = k.history_id
             AND t.action_timestamp < k.before
            """,
            self.cluster_id, list(history_ids),
            [bound or datetime.datetime.max.replace(tzinfo=datetime.timezone.utc) for bound in before])
        found: dict[int, list[KeptTrace]] = {}
        for row in rows:
            found.setdefault(row["action_history_id"], []).append(
                KeptTrace(id=row["id"], at=row["action_timestamp"], action_type=row["action_type"],
                          score=row["score"], is_pattern_example=row["is_pattern_example"]))
        return found

    async def delete_traces(self, ids: Sequence[int]) -> collections.Counter[int]:
        """Delete these traces (of any of this cluster's targets) in one statement, its own short
        transaction; how many went, by history id. The caller bounds ``len(ids)``, so each delete's
        WAL and dead tuples come in small steps that autovacuum keeps up with.

        The targets' ``action_count`` is left high, on purpose: taking the rows off measured 1.2 s
        over 12 batches on the 10M seed (a batch of expired rows spans thousands of targets), each
        UPDATE holding the row locks every decision on those targets upserts. A counter left over
        ``max_actions`` costs that target one exact recount on the next run, which stores the
        truth."""
        rows = await self.pool.fetch(
            "DELETE FROM resource_action_traces WHERE cluster_id = $1 AND id = ANY($2::bigint[])"
            " RETURNING action_history_id",
            self.cluster_id, sorted(ids))
        return collections.Counter(row["action_history_id"] for row in rows)

    async def expire_untargeted(self, *, before: datetime.datetime, limit: int) -> int:
        """Delete at most ``limit`` untargeted actions older than ``before``; the caller repeats
        until none is left, so no single statement holds a month of rows."""
        return _count(await self.pool.execute(
            "DELETE FROM resource_action_traces WHERE cluster_id = $1 AND id = ANY(ARRAY("
            " SELECT id FROM resource_action_traces WHERE cluster_id = $1 AND action_history_id IS NULL"
            " AND action_timestamp < $2 LIMIT $3)) AND action_history_id IS NULL AND action_timestamp < $2",
            self.cluster_id, before, limit))

    async def longest_max_age_days(self) -> int | None:
        """The longest ``max_age_days`` of any target of any cluster (partitions are shared)."""
        return await self.pool.fetchval("SELECT max(max_age_days) FROM action_histories")

    async def ensure_partition(self, month: datetime.datetime, *, name: str) -> bool:
        """Create and attach the partition of ``month`` (named ``name``) unless it is attached; True
        when this call made it. ``sg_ensure_partition`` (migration 0010) attaches a plain table:
        SHARE UPDATE EXCLUSIVE on the parent, which no insert or read waits for. Raises
        ``asyncpg.LockNotAvailableError`` past ``DDL_LOCK_TIMEOUT`` (another DDL, an ANALYZE of the
        parent); the next run tries again, months before the partition is needed."""
        async with self.pool.acquire() as connection:
            if await connection.fetchval(_ATTACHED, name):
                return False
            async with connection.transaction():
                await connection.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
                await connection.execute("SELECT sg_ensure_partition($1)", month)
            return True

    async def partitions(self) -> list[PartitionTable]:
        """Every table named like a month of the traces: attached, pending detach, or detached and
        not yet dropped (a run stopped between the two)."""
        rows = await self.pool.fetch(
            """
            SELECT c.relname, i.inhdetachpending FROM pg_class c
            LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'resource_action_traces'::regclass
            WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
              AND c.relname ~ '^resource_action_traces_[0-9]{4}_[0-9]{2}$'
            """)
        return [PartitionTable(name=row["relname"],
                               state=PartitionState.DETACHED if row["inhdetachpending"] is None
                               else PartitionState.DETACH_PENDING if row["inhdetachpending"]
                               else PartitionState.ATTACHED)
                for row in rows]

    async def drop_partition(self, table: PartitionTable) -> DroppedRows | None:
        """Detach one month (a table from ``partitions``) without blocking writers, then drop it.

        ``DETACH PARTITION ... CONCURRENTLY`` takes SHARE UPDATE EXCLUSIVE on the parent (inserts
        and reads go on), marks the partition pending, commits, and then waits for every
        transaction that was using the parent to end: a decision's write or read in flight, never
        a later one. Queries planned after that first step no longer see the partition, so its
        final step's ACCESS EXCLUSIVE on the partition queues no decision. A detach stopped
        half-way (lock timeout, cancel, crash) leaves the partition pending; the next run
        completes it with ``FINALIZE``. The detached table is then a plain table: counting its
        rows and dropping it touch nothing else (migration 0010 removed the foreign key whose
        triggers made the drop lock ``action_histories``).

        Returns the rows the table still held, or None when a wait ran past its timeout (retried
        on the next run).
        """
        quoted = f'"{table.name}"'
        async with self.pool.acquire() as connection:
            try:
                if table.state is not PartitionState.DETACHED:
                    step = "FINALIZE" if table.state is PartitionState.DETACH_PENDING else "CONCURRENTLY"
                    # Outside any transaction block (CONCURRENTLY runs two transactions of its own).
                    await connection.execute(f"SET lock_timeout = '{DETACH_LOCK_TIMEOUT}'")
                    try:
                        await connection.execute(f"ALTER TABLE resource_action_traces DETACH PARTITION {quoted} {step}")
                    finally:
                        await connection.execute("RESET lock_timeout")
                async with connection.transaction():
                    await connection.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
                    row = await connection.fetchrow(
                        f"SELECT count(*) AS rows, count(*) FILTER (WHERE cluster_id = $1) AS ours FROM {quoted}",
                        self.cluster_id)
                    await connection.execute(f"DROP TABLE {quoted}")
            except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError, TimeoutError):
                # A lock wait past its timeout, or a statement or command timeout of the pool:
                # nothing was dropped, and a detach cut off half-way is finalized next run.
                return None
        return DroppedRows(rows=int(row["rows"]), ours=int(row["ours"]))


_ATTACHED = ("SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1)"
             " AND inhparent = 'resource_action_traces'::regclass)")
