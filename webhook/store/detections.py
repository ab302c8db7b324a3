"""The gate's recorded detections (``oscillation_detections``), read for the tools and the API.

Writes stay in ``PostgresStore.write_effects`` (one transaction per decision); this repository
only reads, so the MCP tools and the REST API see what the gate wrote without knowing its SQL.
"""

from __future__ import annotations

import dataclasses
import datetime

import asyncpg

from webhook.actions.model import TargetRef


@dataclasses.dataclass(frozen=True, slots=True)
class Detection:
    """One row of ``oscillation_detections``: an alert the gate raised on a target."""

    alert: str
    pattern_type: str
    severity: str
    confidence: float
    strategy: str
    enforcement_action: str
    phase: str
    message: str
    summary: str | None
    alternative: str | None
    occurrences: int
    denied_requests: int
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    cooldown_until: datetime.datetime | None
    actor: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Detection:
        return cls(alert=f"{row['alert_namespace']}/{row['alert_name']}", pattern_type=row["pattern_type"],
                   severity=row["severity"], confidence=row["confidence"], strategy=row["strategy"],
                   enforcement_action=row["enforcement_action"], phase=row["phase"], message=row["message"],
                   summary=row["summary"], alternative=row["alternative"], occurrences=row["occurrences"],
                   denied_requests=row["denied_requests"], first_seen=row["first_seen"],
                   last_seen=row["last_seen"], cooldown_until=row["cooldown_until"], actor=row["actor"])


class DetectionRepository:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    async def of_target(self, target: TargetRef, *, since: datetime.datetime | None = None) -> list[Detection]:
        """The detections on one target seen after ``since``, newest first."""
        rows = await self.pool.fetch(
            """
            SELECT alert_namespace, alert_name, pattern_type, severity, confidence, strategy, enforcement_action,
                   phase, message, summary, alternative, occurrences, denied_requests, first_seen, last_seen,
                   cooldown_until, actor
            FROM oscillation_detections
            WHERE cluster_id = $1 AND namespace = $2 AND kind = $3 AND name = $4
              AND ($5::timestamptz IS NULL OR last_seen > $5)
            ORDER BY last_seen DESC
            """,
            self.cluster_id, target.namespace, target.kind, target.name, since,
        )
        return [Detection.from_row(row) for row in rows]
