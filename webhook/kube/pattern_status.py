"""Keeps each OscillationPattern's ``status.statistics`` and ``status.detectionHistory`` current.

What the numbers mean is in :mod:`webhook.decision.statistics`; this is the writer. It is
gentle with the API server by construction, like the summariser:

* **One leader a pass.** Only the replica holding a PostgreSQL advisory lock (of the pass's own
  transaction) writes; another replica's pass meanwhile does nothing.
* **Only what changed.** An object whose status already says what the gate would write is not
  written; a pass every ``interval`` (60s) therefore writes each object at most once a minute,
  and only while its detections or their judgement change.
* **Paced.** Every write takes a token from one bucket (``writes_per_second`` sustained,
  ``burst`` at once), whatever the number of objects.
* **Its own fields only.** A JSON merge patch of the status subresource with the two fields:
  the policy watcher's ``conditions`` and ``acceptedSpec`` are left as they are.

The same numbers are exported as gauges, labelled by policy and pattern, so an operator can
see on a dashboard which policy is too strict (a high false-positive rate) or too lax (a low
prevention success rate).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, cast

import asyncpg

from webhook import metrics
from webhook.decision import statistics as stats
from webhook.kube.client import GROUP, PATTERNS, VERSION, KubeClient, is_status
from webhook.kube.policies import judge, last_accepted
from webhook.policy.resolved import PatternPolicy
from webhook.store.pattern_records import PatternRecords
from webhook.summaries.pacing import TokenBucket

logger = logging.getLogger(__name__)

DETECTIONS = metrics.PATTERN_DETECTIONS
PREVENTION_SUCCESS = metrics.PATTERN_PREVENTION_SUCCESS
FALSE_POSITIVES = metrics.PATTERN_FALSE_POSITIVES
STATISTICS_KEYS = ("totalDetections", "preventionSuccessRate", "falsePositiveRate", "lastDetection")


@dataclasses.dataclass
class StatusPassReport:
    leader: bool = False
    policies: int = 0
    written: int = 0
    unchanged: int = 0
    failed: int = 0


def wanted_patch(obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that makes ``obj``'s status say ``body``, or None when it already does.

    A statistic the body leaves out (a rate with no evidence any more) is sent as null: a merge
    patch removes it only so."""
    current = obj.get("status") or {}
    if current.get("detectionHistory") == body["detectionHistory"] and current.get("statistics") == body["statistics"]:
        return None
    statistics = {key: body["statistics"].get(key) for key in STATISTICS_KEYS}
    return {"status": {"detectionHistory": body["detectionHistory"], "statistics": statistics}}


def policy_of(obj: dict[str, Any]) -> PatternPolicy | None:
    """The policy in force for one object: the object's own, else the version last accepted."""
    return judge(obj).policy or last_accepted(obj)


class PatternStatusWriter:
    def __init__(self, client: KubeClient, *, pool: asyncpg.Pool, cluster_id: str, interval: float = 60.0,
                 writes_per_second: float = 1.0, burst: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.interval = interval
        self.records = PatternRecords(pool, cluster_id=cluster_id)
        self.lock_name = f"safety-gate/pattern-status/{cluster_id}"
        self.bucket = TokenBucket(rate=writes_per_second, burst=burst, clock=clock)
        self._exported: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="pattern-status")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(min(self.interval, 5.0))
        while True:
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("pattern status: PostgreSQL unavailable (%s); next try in %ss", exc, self.interval)
            except Exception:  # the API server away, a bug: the loop must go on
                logger.exception("pattern status pass failed; next try in %ss", self.interval)
            await asyncio.sleep(self.interval)

    async def run_pass(self) -> StatusPassReport:
        async with self.records.leading(self.lock_name) as leader:
            if not leader:
                return StatusPassReport()
            return await self._pass()

    async def _pass(self) -> StatusPassReport:
        report = StatusPassReport(leader=True)
        try:
            page = cast("dict[str, Any]", await self.client.call(
                self.client.custom.list_cluster_custom_object, GROUP, VERSION, PATTERNS))
        except Exception as exc:
            if is_status(exc, 404):  # the CRD is not installed: nothing to keep current
                return report
            raise
        objects = sorted((o for o in page.get("items") or [] if (o.get("metadata") or {}).get("name")),
                         key=lambda o: o["metadata"]["name"])  # the provider's precedence: by name
        policies = [(obj, policy) for obj in objects if (policy := policy_of(obj)) is not None]
        now = await self.records.database_now()
        since = now - stats.LOOKBACK
        detections = await self.records.detections(since=since)
        overrides = await self.records.overrides(since=since)
        attributed = stats.attribute(detections, [policy for _, policy in policies])
        exported: set[tuple[str, str]] = set()
        for obj, policy in policies:
            mine = attributed.get(policy.name, [])
            numbers = stats.statistics(mine, overrides, window=policy.window, now=now)
            body = {"detectionHistory": stats.history(mine), "statistics": numbers.to_status()}
            self._export(policy, numbers)
            exported.add((policy.name, policy.pattern.value))
            report.policies += 1
            patch = wanted_patch(obj, body)
            if patch is None:
                report.unchanged += 1
                continue
            await self.bucket.acquire()
            try:
                await self.client.call(self.client.custom.patch_cluster_custom_object_status, GROUP, VERSION,
                                       PATTERNS, policy.name, patch)
                report.written += 1
            except Exception as exc:  # noqa: BLE001 - RBAC, a deleted object: the next pass tries again
                report.failed += 1
                if not is_status(exc, 404):
                    logger.warning("OscillationPattern %s: cannot write its statistics: %s", policy.name, exc)
        for labels in self._exported - exported:  # policies deleted since: their series go too
            for gauge in (DETECTIONS, PREVENTION_SUCCESS, FALSE_POSITIVES):
                try:
                    gauge.remove(*labels)
                except KeyError:
                    pass
        self._exported = exported
        return report

    @staticmethod
    def _export(policy: PatternPolicy, numbers: stats.PatternStatistics) -> None:
        labels = (policy.name, policy.pattern.value)
        DETECTIONS.labels(*labels).set(numbers.total_detections)
        for gauge, value in ((PREVENTION_SUCCESS, numbers.prevention_success_rate),
                             (FALSE_POSITIVES, numbers.false_positive_rate)):
            if value is None:
                try:
                    gauge.remove(*labels)
                except KeyError:
                    pass
            else:
                gauge.labels(*labels).set(value)

