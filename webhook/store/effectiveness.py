"""The SQL of effectiveness: assessments onto traces, scored samples out, aggregates into
``action_effectiveness_metrics``, and the summary statistics the MCP tools report.

It speaks in plain values (scores, criteria dicts, method names) so that the store layer does not
depend on ``webhook.effectiveness``, which builds its models from them.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from webhook.actions.model import TargetRef

_RETURNING = """
    RETURNING id, request_uid, correlation_id, action_timestamp, action_type, namespace, kind, name,
              effectiveness_score, effectiveness_criteria, effectiveness_method, effectiveness_assessed_at,
              effectiveness_notes
"""
_ASSESS = """
    UPDATE resource_action_traces SET effectiveness_score = $3, effectiveness_criteria = $4,
           effectiveness_method = $5, effectiveness_assessed_at = $6, effectiveness_notes = $7
    WHERE cluster_id = $1 AND {where}
""" + _RETURNING


def as_score(value: float) -> float:
    """Scores are stored as ``real`` (float4): 0.6 comes back as 0.6000000238. Six decimals is
    all float4 holds, so round to that and give back what was sent."""
    return round(float(value), 6)


@dataclasses.dataclass(frozen=True, slots=True)
class Scoring:
    """What an assessment writes onto a trace."""

    score: float
    criteria: Mapping[str, bool]
    method: str
    notes: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class AssessedAction:
    """A trace right after its assessment was stored."""

    id: int
    request_uid: str
    correlation_id: str | None
    at: datetime.datetime
    action_type: str
    target: TargetRef | None
    score: float
    criteria: dict[str, bool]
    method: str
    assessed_at: datetime.datetime
    notes: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> AssessedAction:
        target = None
        if row["namespace"] and row["kind"] and row["name"]:
            target = TargetRef(namespace=row["namespace"], kind=row["kind"], name=row["name"])
        return cls(id=row["id"], request_uid=row["request_uid"], correlation_id=row["correlation_id"],
                   at=row["action_timestamp"], action_type=row["action_type"], target=target,
                   score=as_score(row["effectiveness_score"]), criteria=row["effectiveness_criteria"] or {},
                   method=row["effectiveness_method"], assessed_at=row["effectiveness_assessed_at"],
                   notes=row["effectiveness_notes"])


@dataclasses.dataclass(frozen=True, slots=True)
class ScoredTrace:
    """An assessed action as the aggregates need it."""

    at: datetime.datetime
    score: float
    action_type: str
    namespace: str | None
    alert_name: str | None
    model_used: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class GroupMoments:
    """One (scope, scope value, action type) group of assessed actions, as PostgreSQL sums it up:
    enough for the mean, the confidence interval and the trend without moving a single sample."""

    scope_type: str
    scope_value: str
    action_type: str
    sample_size: int
    mean: float
    stddev: float | None
    older_mean: float | None  # the older half by (time, id); the middle sample of an odd count in neither
    newer_mean: float | None


# Each assessed action counts once in each scope it has a value for (the scopes of
# ``webhook.effectiveness.aggregate``). Scores are rounded as ``as_score`` rounds them, in numeric,
# so the sums are exact.
_MOMENTS = """
WITH scored AS (
    SELECT action_timestamp, id, round(effectiveness_score::numeric, 6) AS score, action_type,
           namespace, alert_name, model_used
    FROM resource_action_traces
    WHERE cluster_id = $1 AND effectiveness_score IS NOT NULL
      AND action_timestamp >= $2 AND action_timestamp <= $3
), scoped AS (
    SELECT s.action_timestamp, s.id, s.score, s.action_type, v.scope_type, v.scope_value
    FROM scored s CROSS JOIN LATERAL (VALUES ('action_type', 'global'), ('namespace', s.namespace),
                                             ('alert', s.alert_name), ('model', s.model_used)) AS v(scope_type, scope_value)
    WHERE v.scope_value <> ''
), ranked AS (
    SELECT scope_type, scope_value, action_type, score,
           row_number() OVER (PARTITION BY scope_type, scope_value, action_type ORDER BY action_timestamp, id) AS rn,
           count(*) OVER (PARTITION BY scope_type, scope_value, action_type) AS n
    FROM scoped
)
SELECT scope_type, scope_value, action_type, count(*) AS n, avg(score)::float8 AS mean,
       stddev_samp(score)::float8 AS stddev,
       avg(score) FILTER (WHERE rn <= n / 2)::float8 AS older_mean,
       avg(score) FILTER (WHERE rn > n - n / 2)::float8 AS newer_mean
FROM ranked
GROUP BY scope_type, scope_value, action_type
"""


@dataclasses.dataclass(frozen=True, slots=True)
class AggregateRow:
    """One row of ``action_effectiveness_metrics``."""

    scope_type: str
    scope_value: str
    action_type: str
    sample_size: int
    mean: float | None
    ci_lower: float | None
    ci_upper: float | None
    trend: str


class GroupBy(str, enum.Enum):
    """The columns the statistics may be grouped by (spliced into SQL, so never caller text)."""

    NAMESPACE = "namespace"
    KIND = "kind"
    ACTION_TYPE = "action_type"


@dataclasses.dataclass(frozen=True, slots=True)
class Statistics:
    """Scores of the recorded actions of one group; unassessed actions count in ``total`` only."""

    group: str | None
    total: int
    assessed: int
    mean: float | None
    min: float | None
    max: float | None
    stddev: float | None


class EffectivenessRepository:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    def _args(self, scoring: Scoring, at: datetime.datetime) -> list[Any]:
        return [float(scoring.score), dict(scoring.criteria), scoring.method, at, scoring.notes]

    async def assess(self, action_id: int, scoring: Scoring, *, at: datetime.datetime) -> AssessedAction | None:
        """Store the assessment on one trace; None when the id is unknown (in this cluster)."""
        row = await self.pool.fetchrow(_ASSESS.format(where="id = $2"), self.cluster_id, action_id,
                                       *self._args(scoring, at))
        return AssessedAction.from_row(row) if row else None

    async def assess_correlation(self, correlation_id: str, scoring: Scoring, *,
                                 at: datetime.datetime) -> list[AssessedAction]:
        """Store the assessment on every trace carrying the correlation id, oldest first."""
        rows = await self.pool.fetch(_ASSESS.format(where="correlation_id = $2"), self.cluster_id,
                                     correlation_id, *self._args(scoring, at))
        return sorted((AssessedAction.from_row(row) for row in rows), key=lambda a: (a.at, a.id))

    async def scored(self, *, since: datetime.datetime, until: datetime.datetime) -> list[ScoredTrace]:
        """Assessed actions taken in [since, until]."""
        rows = await self.pool.fetch(
            """
            SELECT action_timestamp, effectiveness_score::float8 AS score, action_type, namespace, alert_name,
                   model_used
            FROM resource_action_traces
            WHERE cluster_id = $1 AND effectiveness_score IS NOT NULL
              AND action_timestamp >= $2 AND action_timestamp <= $3
            ORDER BY action_timestamp, id
            """,
            self.cluster_id, since, until,
        )
        return [ScoredTrace(at=row["action_timestamp"], score=as_score(row["score"]), action_type=row["action_type"],
                            namespace=row["namespace"], alert_name=row["alert_name"], model_used=row["model_used"])
                for row in rows]

    async def moments(self, *, since: datetime.datetime, until: datetime.datetime) -> list[GroupMoments]:
        """Every scope's groups of the actions assessed and taken in [since, until], summed up in
        PostgreSQL: a few rows per action type and scope value, however many actions were assessed."""
        rows = await self.pool.fetch(_MOMENTS, self.cluster_id, since, until)
        return [GroupMoments(scope_type=row["scope_type"], scope_value=row["scope_value"],
                             action_type=row["action_type"], sample_size=row["n"], mean=row["mean"],
                             stddev=row["stddev"], older_mean=row["older_mean"], newer_mean=row["newer_mean"])
                for row in rows]

    async def store_aggregates(self, rows: Sequence[AggregateRow], *, period_start: datetime.datetime,
                               period_end: datetime.datetime, computed_at: datetime.datetime) -> None:
        if not rows:
            return
        await self.pool.executemany(
            """
            INSERT INTO action_effectiveness_metrics (cluster_id, scope_type, scope_value, action_type, sample_size,
                mean_score, ci_lower, ci_upper, trend, period_start, period_end, computed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (cluster_id, scope_type, scope_value, action_type) DO UPDATE SET
                sample_size = EXCLUDED.sample_size, mean_score = EXCLUDED.mean_score,
                ci_lower = EXCLUDED.ci_lower, ci_upper = EXCLUDED.ci_upper, trend = EXCLUDED.trend,
                period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
                computed_at = EXCLUDED.computed_at
            """,
            [(self.cluster_id, r.scope_type, r.scope_value, r.action_type, r.sample_size, r.mean, r.ci_lower,
              r.ci_upper, r.trend, period_start, period_end, computed_at) for r in rows],
        )

    async def statistics(self, *, since: datetime.datetime, action_type: str | None, namespace: str | None,
                         kind: str | None, group_by: GroupBy | None) -> list[Statistics]:
        """Scores of the actions recorded since ``since``: one row, or one per ``group_by`` value."""
        key = GroupBy(group_by).value if group_by is not None else "NULL::text"
        rows = await self.pool.fetch(
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
            self.cluster_id, since, action_type, namespace, kind,
        )
        return [Statistics(group=row["grp"], total=row["total"], assessed=row["assessed"], mean=row["mean"],
                           min=row["min"], max=row["max"], stddev=row["stddev"]) for row in rows]
