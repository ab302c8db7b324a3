"""Background jobs of a serving gate, as services: retention every ``retention_interval`` seconds
(only the replica holding the leader lock does the work) and a refresh of the effectiveness
aggregates every ``effectiveness_interval`` seconds (every replica, so each publishes
``ai_action_effectiveness_score`` from its own /metrics). Either interval at 0 turns its job off.
And fresh planner statistics for young hot tables (``webhook.store.statistics``), always on.
"""

from __future__ import annotations

import datetime
import logging

import asyncpg

from webhook import metrics
from webhook.effectiveness.service import EffectivenessService
from webhook.retention.runner import ALL_NAMESPACES, RetentionReport, RetentionRunner
from webhook.server.api.effectiveness import publish
from webhook.services import GuardedTask, Service
from webhook.settings import Settings
from webhook.store.history import HistoryStore
from webhook.store.statistics import StatisticsKeeper

logger = logging.getLogger(__name__)

#: The first run comes soon after start (a fresh replica catches up), not a whole interval later.
FIRST_RUN_SECONDS = 60.0
#: Seconds between looks at the hot tables' statistics (``webhook.store.statistics``): a catalog
#: query; an ANALYZE only for a table that doubled since its last one.
STATISTICS_SECONDS = 15.0


def count_run(report: RetentionReport) -> None:
    """``ai_retention_operations_total{strategy, namespace, result}``: one per run; ``namespace`` is
    ``all`` (a run covers every namespace; the per-namespace counts are in ``retention_operations``)."""
    metrics.RETENTION_OPERATIONS.labels(strategy=report.strategy, namespace=ALL_NAMESPACES,
                                        result=report.result).inc()
    if report.leader:
        logger.info("retention %s: %d action(s) removed, partitions dropped: %s", report.result,
                    report.actions_removed, ", ".join(report.partitions_dropped) or "none")


def job_services(settings: Settings, *, history: HistoryStore, pool: asyncpg.Pool) -> list[Service]:
    """``pool`` is the batch pool: no 2s statement timeout (a retention run over ten million
    actions takes seconds). The jobs are guarded tasks: a SIGTERM in the middle of a run stops them
    within their bound instead of waiting for the run (or a swallowed cancellation) to end."""
    jobs: list[Service] = [GuardedTask(name="table-statistics", step=StatisticsKeeper(pool).refresh,
                                       interval=STATISTICS_SECONDS, first_delay=5.0)]
    if settings.retention.interval:
        runner = RetentionRunner(pool, cluster_id=history.postgres.cluster_id,
                                 default_max_age=settings.retention.max_age,
                                 on_finished=count_run)
        jobs.append(GuardedTask(name="retention", step=runner.run, interval=settings.retention.interval,
                                first_delay=min(settings.retention.interval, FIRST_RUN_SECONDS)))
    if settings.retention.effectiveness_interval:
        effectiveness = EffectivenessService(history=history, pool=pool)

        async def refresh() -> None:
            publish(await effectiveness.refresh(now=datetime.datetime.now(datetime.timezone.utc)))

        jobs.append(GuardedTask(name="effectiveness", step=refresh, interval=settings.retention.effectiveness_interval,
                                first_delay=min(settings.retention.effectiveness_interval, FIRST_RUN_SECONDS)))
    return jobs
