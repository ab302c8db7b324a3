"""The SQL behind the OscillationPattern statistics: detections and overrides from ``admission_decisions``.

Read by the pattern-status writer (:mod:`webhook.kube.pattern_status`), which computes with
:mod:`webhook.decision.statistics`. Each query reads a bounded window (``since``) and at most
``limit`` rows, newest first, through a partial index of its own (migration 0006), so a pass
costs the same after a year as after a day.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from webhook.actions.model import TargetRef
from webhook.decision.decide import Outcome
from webhook.decision.statistics import DETECTED, Detection, Override, OverrideKind
from webhook.policy.model import PatternType, Strategy

MAX_ROWS = 20_000

_DETECTIONS = """
SELECT d.decided_at, d.namespace, d.kind, d.name, d.outcome, d.strategy, d.pattern,
       o.confidence, jsonb_array_length(o.evidence) AS action_count
FROM admission_decisions d
LEFT JOIN LATERAL (
    SELECT confidence, evidence FROM oscillation_detections o
    WHERE o.cluster_id = d.cluster_id AND o.pattern_type = d.pattern AND o.kind = d.kind AND o.name = d.name
      AND o.namespace IS NOT DISTINCT FROM d.namespace
    ORDER BY o.last_seen DESC LIMIT 1
) o ON true
WHERE d.cluster_id = $1 AND d.decided_at >= $2 AND d.pattern IS NOT NULL AND d.strategy IS NOT NULL
  AND d.kind IS NOT NULL AND d.outcome = ANY($3::text[])
ORDER BY d.decided_at DESC
LIMIT $4
"""

_OVERRIDES = """
SELECT decided_at, namespace, kind, name, outcome, pattern
FROM admission_decisions
WHERE cluster_id = $1 AND decided_at >= $2 AND kind IS NOT NULL AND outcome IN ('approved', 'bypass')
ORDER BY decided_at DESC
LIMIT $3
"""


def _target(row: Any) -> TargetRef:
    return TargetRef(namespace=row["namespace"] or "", kind=row["kind"], name=row["name"])


class PatternRecords:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    @contextlib.asynccontextmanager
    async def leading(self, name: str) -> AsyncIterator[bool]:
        """True inside when this replica holds the advisory lock ``name`` for the pass: a lock of
        the pass's own transaction, so it ends with the pass (or the session) whatever happens."""
        async with self.pool.acquire() as connection, connection.transaction():
            yield bool(await connection.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", name))

    async def database_now(self) -> datetime.datetime:
        value: datetime.datetime = await self.pool.fetchval("SELECT now()")
        return value

    async def detections(self, *, since: datetime.datetime, limit: int = MAX_ROWS) -> list[Detection]:
        rows = await self.pool.fetch(_DETECTIONS, self.cluster_id, since, [o.value for o in DETECTED], limit)
        found = []
        for row in rows:
            try:
                pattern, strategy = PatternType(row["pattern"]), Strategy(row["strategy"])
            except ValueError:  # a pattern or strategy a newer gate recorded: not ours to judge
                continue
            found.append(Detection(
                at=row["decided_at"], pattern=pattern, target=_target(row), outcome=Outcome(row["outcome"]),
                strategy=strategy, confidence=row["confidence"], action_count=row["action_count"]))
        return found

    async def overrides(self, *, since: datetime.datetime, limit: int = MAX_ROWS) -> list[Override]:
        rows = await self.pool.fetch(_OVERRIDES, self.cluster_id, since, limit)
        found = []
        for row in rows:
            approved = row["outcome"] == Outcome.APPROVED.value
            try:
                pattern = PatternType(row["pattern"]) if approved and row["pattern"] else None
            except ValueError:
                continue
            found.append(Override(at=row["decided_at"], target=_target(row),
                                  kind=OverrideKind.APPROVAL if approved else OverrideKind.BYPASS, pattern=pattern))
        return found
