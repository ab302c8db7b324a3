"""One retention run over PostgreSQL (DESIGN §7), by one replica at a time.

A run:

1. takes the leader lock — a session-level ``pg_try_advisory_lock`` held on a dedicated
   connection for the whole run; a replica that does not get it skips the run (another one is
   doing the work, and the next tick will come). A crashed leader's lock dies with its session;
2. opens a ``retention_operations`` row (``running``);
3. marks pattern examples from the detections' evidence (the trigger of migration 0003 does it
   as detections are written; this catches anything it could not see);
4. creates the partitions of the current month and the next two (attached, migration 0010: no
   decision waits for it), so a decision's write never needs DDL;
5. drops the monthly partitions lying entirely before the age cutoff, first, so their rows need
   no per-row DELETE. Partitions are shared by every cluster id in the database, so the cutoff
   uses the longest ``max_age_days`` of any target (never less than the default): a partition is
   dropped only when no target anywhere may still keep its rows. Each is detached
   ``CONCURRENTLY`` (writers go on), then dropped; a lock wait past its timeout gives up, and the
   partition (perhaps left "detach pending") is finished on the next run;
6. per target that is over its ``max_actions`` or holds actions older than its
   ``max_age_days``: plans with :func:`webhook.retention.plan.plan_deletions` under the target's
   ``compaction_strategy`` (or the run's override). Set-based and in bounded steps: targets with
   work are found ``history_page`` history ids at a time, one query loads the traces of
   ``target_batch`` of them, one DELETE removes up to ``delete_batch`` planned ids of any of
   them; after each step the run rests ``rest`` times as long as the step took. A target's
   traces are counted only when its ``action_count`` (an upper bound kept by the decisions'
   writes, migration 0012, left high by deletes) exceeds its ``max_actions``; its age needs one
   index probe. Then untargeted
   actions older than the default max age go, in the same steps;
7. closes the row (``success`` or ``failure`` with the error in ``details``).

Deleting a trace of the last 24h (possible only under ``oldest-first``/``effectiveness-based``
with more than ``max_actions`` recent actions) leaves it in the Redis copy of recent events until
that expires; the copy is a cache of admitted history, so this errs on the side of caution.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from webhook.retention import partitions
from webhook.retention.plan import plan_deletions
from webhook.retention.policy import DEFAULT_MAX_AGE, RetentionPolicy, Strategy, Trace
from webhook.store.retention import PartitionState, RetentionRepository, TargetLimits

logger = logging.getLogger(__name__)

PER_TARGET = "per-target"
#: Targets whose traces one query fetches (a few hundred traces each at most maxActions 1000).
TARGET_BATCH = 500
#: Actions one DELETE removes: one short transaction, a bounded step of WAL and dead tuples.
DELETE_BATCH = 5000
#: History ids one search for targets with work covers (a short statement, not one for all).
HISTORY_PAGE = 2000
#: Seconds a run sleeps at least after each batch, so it never holds the cores for long...
BATCH_PAUSE = 0.02
#: ...and how long it rests after each batch, as a multiple of the time the batch took.
REST = 1.0
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
    partition_rows_dropped: int = 0   # rows in dropped partitions, any cluster id (this one's are in actions_removed)
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
                 on_finished: Callable[[RetentionReport], None] | None = None,
                 target_batch: int = TARGET_BATCH, delete_batch: int = DELETE_BATCH,
                 history_page: int = HISTORY_PAGE, pause: float = BATCH_PAUSE, rest: float = REST) -> None:
        if target_batch < 1 or delete_batch < 1 or history_page < 1:
            raise ValueError("batches and pages must hold at least one target and one action")
        if pause < 0 or rest < 0:
            raise ValueError("a rest cannot be negative")
        self.pool = pool
        self.target_batch = target_batch
        self.delete_batch = delete_batch
        self.history_page = history_page
        self.pause = pause
        self.rest = rest
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
            await self._create_partitions(report)
            await self._drop_expired_partitions(report)
            await self._compact_targets(report, strategy=strategy)
            await self._expire_untargeted(report)
            report.result = "success"
        except Exception as exc:
            logger.exception("retention run failed")
            report.result = "failure"
            report.error = f"{type(exc).__name__}: {exc}"
        await self.repository.close_operation(
            report.operation_id, actions_removed=report.actions_removed,
            partitions_dropped=report.partitions_dropped, result=report.result, details=report.details())

    async def _rest(self, *, since: float) -> None:
        """After a batch that began at ``since`` (monotonic): sleep ``rest`` times as long as it took,
        and at least ``pause``. A run then holds PostgreSQL and the cores for at most 1 / (1 + rest)
        of its time (half, by default): on a small machine the decisions get the rest, and the run
        takes longer instead."""
        delay = max(self.pause, (time.monotonic() - since) * self.rest)
        if delay > 0:
            await asyncio.sleep(delay)

    async def _targets_over_limits(self, *, now: datetime.datetime) -> AsyncIterator[list[TargetLimits]]:
        """The targets with work, ``target_batch`` at a time, found by walking the history ids a
        page (``history_page``) at a time, with a rest after each page."""
        bounds = await self.repository.history_ids()
        if bounds is None:
            return
        low, high = bounds
        for first in range(low, high + 1, self.history_page):
            started = time.monotonic()
            targets = await self.repository.targets_over_limits(now=now, first=first,
                                                                last=first + self.history_page - 1)
            await self._rest(since=started)
            for offset in range(0, len(targets), self.target_batch):
                yield targets[offset:offset + self.target_batch]

    async def _compact_targets(self, report: RetentionReport, *, strategy: Strategy | None) -> None:
        """Plan each target with the pure planner, fetching ``target_batch`` targets' traces per query
        and deleting ``delete_batch`` planned ids per statement, each its own short transaction,
        with a rest after each step."""
        now = report.now
        by_namespace: dict[str, int] = collections.Counter()
        by_strategy: dict[str, int] = collections.Counter()
        doomed: list[int] = []
        owner: dict[int, tuple[TargetLimits, RetentionPolicy]] = {}

        async def delete(ids: list[int]) -> None:
            started = time.monotonic()
            removed = await self.repository.delete_traces(ids)
            for history_id, count in removed.items():
                target, policy = owner[history_id]
                report.actions_removed += count
                by_namespace[target.namespace] += count
                by_strategy[policy.strategy.value] += count
            await self._rest(since=started)

        async for batch in self._targets_over_limits(now=now):
            started = time.monotonic()
            policies = [RetentionPolicy(max_actions=target.max_actions,
                                        max_age=datetime.timedelta(days=target.max_age_days),
                                        strategy=strategy or Strategy(target.compaction_strategy))
                        for target in batch]
            # A target within its count can lose only what is past its age (removing rows cannot
            # bring it over), so the planner is given just those: the same plan from a few rows
            # instead of the whole history.
            traced = await self.repository.traces(
                [target.history_id for target in batch],
                before=[None if target.actions > policy.max_actions else now - policy.max_age
                        for target, policy in zip(batch, policies, strict=True)])
            for target, policy in zip(batch, policies, strict=True):
                traces = [Trace(id=kept.id, at=kept.at, action_type=kept.action_type, effectiveness=kept.score,
                                is_pattern_example=kept.is_pattern_example)
                          for kept in traced.get(target.history_id, [])]
                planned = plan_deletions(traces, policy=policy, now=now)
                report.targets_examined += 1
                if not planned:
                    continue
                owner[target.history_id] = (target, policy)
                cutoff = now - policy.max_age
                report.aged_out += sum(1 for trace in traces if trace.id in planned and trace.at < cutoff)
                doomed.extend(sorted(planned))
            await self._rest(since=started)
            while len(doomed) >= self.delete_batch:
                await delete(doomed[:self.delete_batch])
                del doomed[:self.delete_batch]
        if doomed:
            await delete(doomed)
        report.removed_by_namespace = dict(by_namespace)
        report.removed_by_strategy = dict(by_strategy)

    async def _expire_untargeted(self, report: RetentionReport) -> None:
        before = report.now - self.default_max_age
        while True:
            started = time.monotonic()
            removed = await self.repository.expire_untargeted(before=before, limit=self.delete_batch)
            report.untargeted_removed += removed
            report.aged_out += removed
            report.actions_removed += removed
            if removed < self.delete_batch:
                return
            await self._rest(since=started)

    async def partition_max_age(self) -> datetime.timedelta:
        """The age beyond which no target of any cluster keeps anything."""
        longest = await self.repository.longest_max_age_days()
        return max(self.default_max_age, datetime.timedelta(days=longest or 0))

    async def _create_partitions(self, report: RetentionReport) -> None:
        """This month and the next ``MONTHS_AHEAD``, so no decision's write finds its month missing."""
        for month in partitions.months_to_create(report.now):
            name = partitions.partition_name(month)
            try:
                created = await self.repository.ensure_partition(month, name=name)
            except asyncpg.LockNotAvailableError:
                logger.warning("retention: partition %s not created (lock busy), trying on the next run", name)
                report.partitions_kept_busy.append(name)
                continue
            if created:
                report.partitions_created.append(name)

    async def _drop_expired_partitions(self, report: RetentionReport) -> None:
        """Drop whole the months past every target's max age, before any per-target work: their rows
        then need no DELETE (and leave no dead tuples for autovacuum). Their rows of this cluster
        count as removed and aged out, but under no strategy or namespace (no target chose them).
        A detach left pending by an earlier run goes first: a table may have only one."""
        max_age = await self.partition_max_age()
        tables = {table.name: table for table in await self.repository.partitions()}
        doomed = partitions.partitions_to_drop(tables, now=report.now, max_age=max_age)
        doomed.sort(key=lambda name: tables[name].state is not PartitionState.DETACH_PENDING)
        for name in doomed:
            dropped = await self.repository.drop_partition(tables[name])
            if dropped is None:
                logger.warning("retention: partition %s busy, dropping it on the next run", name)
                report.partitions_kept_busy.append(name)
                continue
            report.partitions_dropped.append(name)
            report.partition_rows_dropped += dropped.rows
            report.actions_removed += dropped.ours
            report.aged_out += dropped.ours
