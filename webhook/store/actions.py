"""Recorded actions (``resource_action_traces``, with their ``action_status``) read a page at a time,
for ``GET /api/v1/history``.

Writing them, and the reads the gate decides from, stay in ``PostgresStore``; this repository is
the listing people and tools page through, keyed on ``(action_timestamp, id)``, the order of the
index, so rows recorded while a client pages never shift a page or repeat a row.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg


@dataclasses.dataclass(frozen=True, slots=True)
class ActionFilter:
    namespace: str | None = None
    kind: str | None = None
    name: str | None = None
    action_type: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None


class ActionLog:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    async def page(self, where: ActionFilter, *, after: tuple[datetime.datetime, int] | None,
                   limit: int) -> Sequence[Mapping[str, Any]]:
        """Up to ``limit`` actions older than ``after`` (a ``(timestamp, id)`` cursor), newest first."""
        return await self.pool.fetch(
            """
            SELECT id, t.request_uid, action_timestamp, namespace, kind, name, action_type, t.actor, actor_class,
                   object_kind, alert_name, correlation_id, model_used, model_confidence::float8 AS model_confidence,
                   replicas_before, replicas_after, bypass_reason, is_pattern_example, event,
                   effectiveness_score::float8 AS effectiveness_score, effectiveness_criteria, effectiveness_method,
                   effectiveness_assessed_at, effectiveness_notes, s.status
            FROM resource_action_traces t
            LEFT JOIN action_status s ON s.cluster_id = t.cluster_id AND s.request_uid = t.request_uid
            WHERE t.cluster_id = $1
              AND ($2::text IS NULL OR namespace = $2) AND ($3::text IS NULL OR kind = $3)
              AND ($4::text IS NULL OR name = $4) AND ($5::text IS NULL OR action_type = $5)
              AND ($6::timestamptz IS NULL OR action_timestamp >= $6)
              AND ($7::timestamptz IS NULL OR action_timestamp <= $7)
              AND ($8::timestamptz IS NULL OR (action_timestamp, id) < ($8, $9::bigint))
            ORDER BY action_timestamp DESC, id DESC
            LIMIT $10
            """,
            self.cluster_id, where.namespace, where.kind, where.name, where.action_type, where.since, where.until,
            after[0] if after else None, after[1] if after else None, limit,
        )
