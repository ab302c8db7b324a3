"""Read-only queries the MCP tools need and the store does not offer (detections of one target,
effectiveness aggregates). They run on the runtime's asyncpg pool and never write."""

from __future__ import annotations

import datetime
from typing import Any

import asyncpg

from webhook.actions.model import TargetRef


async def target_detections(pool: asyncpg.Pool, *, cluster_id: str, target: TargetRef,
                            since: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """The gate's recorded detections on one target (``oscillation_detections``), newest first."""
    rows = await pool.fetch(
        """
        SELECT alert_namespace, alert_name, pattern_type, severity, confidence, strategy, enforcement_action,
               phase, message, summary, alternative, occurrences, denied_requests, first_seen, last_seen,
               cooldown_until, actor
        FROM oscillation_detections
        WHERE cluster_id = $1 AND namespace = $2 AND kind = $3 AND name = $4
          AND ($5::timestamptz IS NULL OR last_seen > $5)
        ORDER BY last_seen DESC
        """,
        cluster_id, target.namespace, target.kind, target.name, since,
    )
    return [
        {
            "alert": f"{row['alert_namespace']}/{row['alert_name']}", "pattern_type": row["pattern_type"],
            "severity": row["severity"], "confidence": round(row["confidence"], 3), "strategy": row["strategy"],
            "enforcement_action": row["enforcement_action"], "phase": row["phase"], "message": row["message"],
            "summary": row["summary"], "alternative": row["alternative"], "occurrences": row["occurrences"],
            "denied_requests": row["denied_requests"], "first_seen": row["first_seen"].isoformat(),
            "last_seen": row["last_seen"].isoformat(), "actor": row["actor"],
            "cooldown_until": row["cooldown_until"].isoformat() if row["cooldown_until"] else None,
        }
        for row in rows
    ]


async def effectiveness(pool: asyncpg.Pool, *, cluster_id: str, since: datetime.datetime,
                        action_type: str | None, namespace: str | None, kind: str | None,
                        group_by: str | None) -> list[dict[str, Any]]:
    """Effectiveness of recorded actions since ``since``: one row, or one per ``group_by`` value.

    ``group_by`` is one of the fixed column names ``namespace``, ``kind``, ``action_type`` (never
    caller text: it is spliced into the SQL). Unassessed actions count in ``total`` only.
    """
    assert group_by in (None, "namespace", "kind", "action_type")
    key = group_by or "NULL::text"
    rows = await pool.fetch(
        f"""
        SELECT {key} AS grp,
               count(*) AS total,
               count(effectiveness_score) AS assessed,
               avg(effectiveness_score)::float8 AS mean,
               min(effectiveness_score)::float8 AS min,
               max(effectiveness_score)::float8 AS max,
               stddev_samp(effectiveness_score)::float8 AS stddev
        FROM resource_action_traces
        WHERE cluster_id = $1 AND action_timestamp > $2
          AND ($3::text IS NULL OR action_type = $3)
          AND ($4::text IS NULL OR namespace = $4)
          AND ($5::text IS NULL OR kind = $5)
        GROUP BY 1
        ORDER BY 1 NULLS FIRST
        """,
        cluster_id, since, action_type, namespace, kind,
    )
    return [dict(row) for row in rows]
