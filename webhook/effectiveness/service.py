"""Assessing actions and refreshing aggregates: the repository plus the cache it must keep honest."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import asyncpg

from webhook.effectiveness.aggregate import Aggregate, Scope, ScoredAction, aggregate
from webhook.effectiveness.model import Assessment
from webhook.effectiveness.stats import summary_of
from webhook.store.effectiveness import (
    AggregateRow,
    AssessedAction,
    EffectivenessRepository,
    GroupMoments,
    ScoredTrace,
    Scoring,
)
from webhook.store.history import HistoryStore

DEFAULT_PERIOD = datetime.timedelta(days=30)


class EffectivenessService:
    def __init__(self, *, history: HistoryStore, pool: asyncpg.Pool | None = None) -> None:
        """``pool``: where the aggregates are read and written (default: the history's pool)."""
        self.history = history
        postgres = history.postgres
        self.repository = EffectivenessRepository(pool or postgres.pool, cluster_id=postgres.cluster_id)

    async def assess(self, action_id: int, assessment: Assessment, *,
                     now: datetime.datetime) -> AssessedAction | None:
        assessed = await self.history.in_postgres(
            lambda: self.repository.assess(action_id, scoring(assessment), at=now))
        if assessed is not None:
            await self._forget([assessed])
        return assessed

    async def assess_correlation(self, correlation_id: str, assessment: Assessment, *,
                                 now: datetime.datetime) -> list[AssessedAction]:
        assessed = await self.history.in_postgres(
            lambda: self.repository.assess_correlation(correlation_id, scoring(assessment), at=now))
        await self._forget(assessed)
        return assessed

    async def _forget(self, assessed: list[AssessedAction]) -> None:
        """The Redis copy of a target's recent events carries the old (missing) score; the next
        decision must read the new one, so the copy goes and is rebuilt from PostgreSQL."""
        for target in {a.target for a in assessed if a.target is not None}:
            await self.history.forget_target(target)

    async def report(self, *, scope: Scope, value: str | None, action_type: str | None,
                     period: datetime.timedelta, now: datetime.datetime) -> list[Aggregate]:
        """Fresh aggregates for one scope, also stored in ``action_effectiveness_metrics``."""
        since = now - period
        actions = scored_actions(await self.repository.scored(since=since, until=now))
        results = aggregate(actions, scope=scope, value=value, action_type=action_type)
        await self.repository.store_aggregates(rows_of(results), period_start=since, period_end=now,
                                               computed_at=now)
        return results

    async def refresh(self, *, now: datetime.datetime,
                      period: datetime.timedelta = DEFAULT_PERIOD) -> list[Aggregate]:
        """Every scope, stored: what the periodic job runs, in the gate's own event loop. So the
        samples are summed up in PostgreSQL (one statement, a few rows back) instead of being
        carried here and grouped in Python, which held the loop, and every decision, for as long
        as it took; the results are :func:`aggregate_all`'s (``test_effectiveness_refresh``)."""
        since = now - period
        results = aggregates_of(await self.repository.moments(since=since, until=now))
        await self.repository.store_aggregates(rows_of(results), period_start=since, period_end=now,
                                               computed_at=now)
        return results


def aggregates_of(groups: Sequence[GroupMoments]) -> list[Aggregate]:
    """The aggregates of summed-up groups, in :func:`aggregate_all`'s order (scope, then value, then type)."""
    order = {scope.scope_type: index for index, scope in enumerate(Scope)}
    scopes = {scope.scope_type: scope for scope in Scope}
    return [Aggregate(scope=scopes[g.scope_type], scope_value=g.scope_value, action_type=g.action_type,
                      summary=summary_of(sample_size=g.sample_size, mean=g.mean, stddev=g.stddev,
                                         older_mean=g.older_mean, newer_mean=g.newer_mean))
            for g in sorted(groups, key=lambda g: (order[g.scope_type], g.scope_value, g.action_type))]


def scoring(assessment: Assessment) -> Scoring:
    return Scoring(score=float(assessment.score), criteria=assessment.criteria.model_dump(),
                   method=assessment.method.value, notes=assessment.notes)


def scored_actions(traces: Sequence[ScoredTrace]) -> list[ScoredAction]:
    return [ScoredAction(at=t.at, score=t.score, action_type=t.action_type, namespace=t.namespace,
                         alert_name=t.alert_name, model_used=t.model_used) for t in traces]


def rows_of(aggregates: Sequence[Aggregate]) -> list[AggregateRow]:
    return [AggregateRow(scope_type=a.scope.scope_type, scope_value=a.scope_value, action_type=a.action_type,
                         sample_size=a.summary.sample_size, mean=a.summary.mean, ci_lower=a.summary.ci_lower,
                         ci_upper=a.summary.ci_upper, trend=a.summary.trend.value) for a in aggregates]
