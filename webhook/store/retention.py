"""The SQL of retention (DESIGN §7): the leader lock, the run's ``retention_operations`` row,
per-target compaction, untargeted expiry and the monthly partitions.

``webhook.retention.runner`` decides what goes (with the pure planner); this module only reads
and deletes what it is told, so the store layer keeps every statement on the history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

#: How long a partition drop waits for its table lock: a busy admission path is never stalled.
DDL_LOCK_TIMEOUT = "2s"


@dataclasses.dataclass(frozen=True, slots=True)
class TargetLimits:
    """A target over its ``max_actions`` or holding actions older than its ``max_age_days``."""

    history_id: int
    namespace: str
    max_actions: int
    max_age_days: int
    compaction_strategy: str


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

    async def targets_over_limits(self, *, now: datetime.datetime) -> list[TargetLimits]:
        """Targets over their count, or holding something past their age (one pass over the index)."""
        rows = await self.pool.fetch(
            """
            SELECT h.id, h.max_actions, h.max_age_days, h.compaction_strategy, r.namespace
            FROM action_histories h JOIN resource_references r ON r.id = h.resource_id
            JOIN LATERAL (
                SELECT count(*) AS n, min(action_timestamp) AS oldest FROM resource_action_traces t
                WHERE t.cluster_id = h.cluster_id AND t.action_history_id = h.id) AS s ON true
            WHERE h.cluster_id = $1
              AND (s.n > h.max_actions OR s.oldest < $2::timestamptz - make_interval(days => h.max_age_days))
            ORDER BY h.id
            """,
            self.cluster_id, now)
        return [TargetLimits(history_id=row["id"], namespace=row["namespace"], max_actions=row["max_actions"],
                             max_age_days=row["max_age_days"], compaction_strategy=row["compaction_strategy"])
                for row in rows]

    async def traces(self, history_id: int) -> list[KeptTrace]:
        rows = await self.pool.fetch(
            "SELECT id, action_timestamp, action_type, effectiveness_score::float8 AS score, is_pattern_example"
            " FROM resource_action_traces WHERE cluster_id = $1 AND action_history_id = $2",
            self.cluster_id, history_id)
        return [KeptTrace(id=row["id"], at=row["action_timestamp"], action_type=row["action_type"],
                          score=row["score"], is_pattern_example=row["is_pattern_example"]) for row in rows]

    async def delete_traces(self, history_id: int, ids: Sequence[int]) -> int:
        return _count(await self.pool.execute(
            "DELETE FROM resource_action_traces WHERE cluster_id = $1 AND action_history_id = $2"
            " AND id = ANY($3::bigint[])",
            self.cluster_id, history_id, sorted(ids)))

    async def expire_untargeted(self, *, before: datetime.datetime) -> int:
        return _count(await self.pool.execute(
            "DELETE FROM resource_action_traces WHERE cluster_id = $1 AND action_history_id IS NULL"
            " AND action_timestamp < $2", self.cluster_id, before))

    async def longest_max_age_days(self) -> int | None:
        """The longest ``max_age_days`` of any target of any cluster (partitions are shared)."""
        return await self.pool.fetchval("SELECT max(max_age_days) FROM action_histories")

    async def ensure_partition(self, month: datetime.date, *, name: str) -> bool:
        """Create the partition of ``month`` (named ``name``) unless it exists; True when created."""
        async with self.pool.acquire() as connection:
            if await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
                return False
            await connection.execute("SELECT sg_ensure_partition($1)", month)
            return True

    async def partitions(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'resource_action_traces'::regclass")
        return [row["relname"] for row in rows]

    async def drop_partition(self, name: str) -> int | None:
        """Drop one partition (a name from ``partitions``); the rows it still held, or None when its
        table lock was busy past ``DDL_LOCK_TIMEOUT`` (retried on the next run)."""
        async with self.pool.acquire() as connection:
            try:
                async with connection.transaction():
                    await connection.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
                    rows = await connection.fetchval(f'SELECT count(*) FROM "{name}"')
                    await connection.execute(f'DROP TABLE IF EXISTS "{name}"')
            except asyncpg.LockNotAvailableError:
                return None
        return int(rows)
