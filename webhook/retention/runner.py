"""One retention run over PostgreSQL (DESIGN §7), by one replica at a time.

A run:

1. takes the leader lock — a session-level ``pg_try_advisory_lock`` held on a dedicated
   connection for the whole run; a replica that does not get it skips the run (another one is
   doing the work, and the next tick will come). A crashed leader's lock dies with its session;
2. opens a ``retention_operations`` row (``running``);
3. marks pattern examples from the detections' evidence (the trigger of migration 0003 does it
   as detections are written; this catches anything it could not see);
4. per target that is over its ``max_actions`` or holds actions older than its
   ``max_age_days``: loads its traces, plans with :func:`webhook.retention.plan.plan_deletions`
   under the target's ``compaction_strategy`` (or the run's override), deletes the plan;
5. deletes untargeted actions older than the default max age;
6. creates the partitions of the current month and the next two, and drops the monthly
   partitions lying entirely before the age cutoff. Partitions are shared by every cluster id in
   the database, so the cutoff uses the longest ``max_age_days`` of any target (never less than
   the default): a partition is dropped only when no target anywhere may still keep its rows.
   DDL waits at most ``lock_timeout`` (2s) for the table lock, so a busy admission path is never
   stalled; a partition that could not be dropped is retried on the next run;
7. closes the row (``success`` or ``failure`` with the error in ``details``).

Deleting a trace of the last 24h (possible only under ``oldest-first``/``effectiveness-based``
with more than ``max_actions`` recent actions) leaves it in the Redis copy of recent events until
that expires; the copy is a cache of admitted history, so this errs on the side of caution.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from webhook.retention import partitions
from webhook.retention.plan import plan_deletions
from webhook.retention.policy import DEFAULT_MAX_AGE, RetentionPolicy, Strategy, Trace
from webhook.store.retention import RetentionRepository

logger = logging.getLogger(__name__)

PER_TARGET = "per-target"
ALL_NAMESPACES = "all"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass
class RetentionReport:
    """What one run did; ``result`` is ``success``, ``failure`` or ``skipped`` (not the leader)."""

    result: str
    strategy: str
    now: datetime.datetime
    operation_id: int | None = None
    targets_examined: int = 0
    actions_removed: int = 0
    aged_out: int = 0
    untargeted_removed: int = 0
    removed_by_namespace: dict[str, int] = dataclasses.field(default_factory=dict)
    removed_by_strategy: dict[str, int] = dataclasses.field(default_factory=dict)
    partitions_dropped: list[str] = dataclasses.field(default_factory=list)
    partitions_created: list[str] = dataclasses.field(default_factory=list)
    partitions_kept_busy: list[str] = dataclasses.field(default_factory=list)
    pattern_examples_marked: int = 0
    partition_rows_dropped: int = 0   # rows still in dropped partitions (any cluster id); not in actions_removed
    error: str | None = None

    @property
    def leader(self) -> bool:
        return self.result != "skipped"

    def details(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "targets_examined": self.targets_examined,
            "aged_out": self.aged_out,
            "untargeted_removed": self.untargeted_removed,
            "removed_by_namespace": self.removed_by_namespace,
            "removed_by_strategy": self.removed_by_strategy,
            "partitions_created": self.partitions_created,
            "partitions_kept_busy": self.partitions_kept_busy,
            "partition_rows_dropped": self.partition_rows_dropped,
            "pattern_examples_marked": self.pattern_examples_marked,
            **({"error": self.error} if self.error else {}),
        }


class RetentionRunner:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str,
                 default_max_age: datetime.timedelta = DEFAULT_MAX_AGE,
                 on_finished: Callable[[RetentionReport], None] | None = None) -> None:
        self.pool = pool
        self.cluster_id = cluster_id
        self.default_max_age = default_max_age
        self.on_finished = on_finished
        self.repository = RetentionRepository(pool, cluster_id=cluster_id)

    @property
    def lock_name(self) -> str:
        return f"safety-gate/retention/{self.cluster_id}"

    async def run(self, *, now: datetime.datetime | None = None, strategy: Strategy | None = None,
                  on_leader: Callable[[], Awaitable[None]] | None = None) -> RetentionReport:
        """Run once if this process wins the leader lock. ``on_leader`` is awaited once the lock is
        held, before any work (a hook for progress output, and for tests that hold a run open)."""
        now = now or utcnow()
        report = RetentionReport(result="skipped", strategy=strategy.value if strategy else PER_TARGET, now=now)
        async with self.repository.leader(self.lock_name) as leading:
            if not leading:
                logger.info("retention: another replica holds the lock, skipping this run")
                self._finished(report)
                return report
            if on_leader is not None:
                await on_leader()
            await self._run_as_leader(report, strategy=strategy)
        self._finished(report)
        return report

    def _finished(self, report: RetentionReport) -> None:
        if self.on_finished is not None:
            self.on_finished(report)

    async def _run_as_leader(self, report: RetentionReport, *, strategy: Strategy | None) -> None:
        report.operation_id = await self.repository.open_operation(strategy=report.strategy)
        try:
            report.pattern_examples_marked = await self.repository.mark_pattern_examples()
            await self._compact_targets(report, strategy=strategy)
            await self._expire_untargeted(report)
            await self._maintain_partitions(report)
            report.result = "success"
        except Exception as exc:
            logger.exception("retention run failed")
            report.result = "failure"
            report.error = f"{type(exc).__name__}: {exc}"
        await self.repository.close_operation(
            report.operation_id, actions_removed=report.actions_removed,
            partitions_dropped=report.partitions_dropped, result=report.result, details=report.details())

    async def _compact_targets(self, report: RetentionReport, *, strategy: Strategy | None) -> None:
        now = report.now
        by_namespace: dict[str, int] = collections.Counter()
        by_strategy: dict[str, int] = collections.Counter()
        for target in await self.repository.targets_over_limits(now=now):
            policy = RetentionPolicy(
                max_actions=target.max_actions,
                max_age=datetime.timedelta(days=target.max_age_days),
                strategy=strategy or Strategy(target.compaction_strategy),
            )
            traces = [Trace(id=kept.id, at=kept.at, action_type=kept.action_type, effectiveness=kept.score,
                            is_pattern_example=kept.is_pattern_example)
                      for kept in await self.repository.traces(target.history_id)]
            doomed = plan_deletions(traces, policy=policy, now=now)
            report.targets_examined += 1
            if not doomed:
                continue
            cutoff = now - policy.max_age
            report.aged_out += sum(1 for trace in traces if trace.id in doomed and trace.at < cutoff)
            removed = await self.repository.delete_traces(target.history_id, sorted(doomed))
            report.actions_removed += removed
            by_namespace[target.namespace] += removed
            by_strategy[policy.strategy.value] += removed
        report.removed_by_namespace = dict(by_namespace)
        report.removed_by_strategy = dict(by_strategy)

    async def _expire_untargeted(self, report: RetentionReport) -> None:
        removed = await self.repository.expire_untargeted(before=report.now - self.default_max_age)
        report.untargeted_removed = removed
        report.aged_out += removed
        report.actions_removed += removed

    async def partition_max_age(self) -> datetime.timedelta:
        """The age beyond which no target of any cluster keeps anything."""
        longest = await self.repository.longest_max_age_days()
        return max(self.default_max_age, datetime.timedelta(days=longest or 0))

    async def _maintain_partitions(self, report: RetentionReport) -> None:
        for month in partitions.months_to_create(report.now):
            name = partitions.partition_name(month)
            if await self.repository.ensure_partition(month, name=name):
                report.partitions_created.append(name)
        max_age = await self.partition_max_age()
        for name in partitions.partitions_to_drop(await self.repository.partitions(), now=report.now,
                                                  max_age=max_age):
            rows = await self.repository.drop_partition(name)
            if rows is None:
                logger.warning("retention: partition %s busy, dropping it on the next run", name)
                report.partitions_kept_busy.append(name)
                continue
            report.partitions_dropped.append(name)
            report.partition_rows_dropped += rows
