"""The summariser: keeps ``ActionHistorySummary`` and ``EffectivenessMetric`` objects current.

How it stays gentle with the API server, whatever the gate is doing:

* **One leader.** Only the replica holding a PostgreSQL advisory lock writes; the others try to
  take the lock at each pass. Where the leader got to is in PostgreSQL (``summary_cursors``),
  so a new leader neither repeats nor skips work.
* **Changed targets only, coalesced.** Each pass reads which targets changed since the cursor
  (:mod:`webhook.store.summaries`); a hundred actions on one target between two passes are
  one write. A summary whose content did not change is not written at all.
* **Bounded writes.** Every request that writes (server-side apply, delete) takes a token from
  one bucket: ``writes_per_second`` sustained, ``burst`` at once. A storm of actions on N targets
  therefore converges in about N / ``writes_per_second`` seconds and never floods the API server.
* **Whole objects by server-side apply.** One request creates or updates a summary, and what
  the new object leaves out (an expired cooling period, a pattern no longer recorded) is removed.
  The summaries have no status subresource for that reason: one write, not two.

Delay: a change shows after ``settle`` seconds (see the repository) and at most one
``interval`` later, plus the writes queued before it. Summaries of targets with no action for
``retention`` are deleted at the next resync (on taking the lead, then every ``resync_interval``),
and so are namespace metrics of namespaces without assessed actions in the last 30 days. The
metrics are recomputed after new assessments, at most every 6 passes (60s by default): they read
every assessed action of 30 days.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from webhook import metrics
from webhook.actions.model import rfc3339
from webhook.decision.state import dns_name
from webhook.effectiveness.service import scored_actions
from webhook.kube.client import GROUP, VERSION, ApiException, KubeClient, is_status
from webhook.store.effectiveness import EffectivenessRepository
from webhook.store.summaries import Change, Cursor, LeaderLock, SummaryRepository
from webhook.summaries import effectiveness as em
from webhook.summaries import targets as ahs
from webhook.summaries.pacing import TokenBucket

logger = logging.getLogger(__name__)

FIELD_MANAGER = "safety-gate"
APPLY = "application/apply-patch+yaml"
PERMANENT = (400, 403, 404, 422)  # this object cannot be written; move on instead of retrying forever
WINDOW = datetime.timedelta(hours=1)  # history read per query of changes
LIST_PAGE = 500


def digest(obj: dict[str, Any]) -> str:
    """What a summary says: spec and status, without the time it was computed."""
    status = {k: v for k, v in (obj.get("status") or {}).items() if k != "lastAnalysis"}
    text = json.dumps({"spec": obj.get("spec"), "status": status, "labels": obj["metadata"].get("labels")},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Transient(Exception):
    """The API server could not take a write now; the pass stops and the next one retries."""


class SummaryWriter:
    """Server-side apply and delete of summaries, each request paced by one token bucket.

    ``sent`` keeps the monotonic time of the last requests: the limit is observable, not promised.
    """

    def __init__(self, client: KubeClient, *, bucket: TokenBucket, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.bucket = bucket
        self.clock = clock
        self.sent: collections.deque[float] = collections.deque(maxlen=100_000)

    async def _send(self, kind: str, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """True when written; False when the API server refused it for good (counted and logged)."""
        await self.bucket.acquire()
        self.sent.append(self.clock())
        try:
            await self.client.call(fn, *args, **kwargs)
        except ApiException as exc:
            if operation == "delete" and exc.status == 404:
                metrics.SUMMARY_WRITES.labels(kind=kind, operation=operation, result="success").inc()
                return True
            metrics.SUMMARY_WRITES.labels(kind=kind, operation=operation, result="failure").inc()
            if exc.status in PERMANENT:
                logger.warning("cannot %s %s %s: %s %s", operation, kind, args[-2:], exc.status, exc.reason)
                return False
            raise Transient(f"{exc.status} {exc.reason}") from exc
        except Exception as exc:  # timeouts, connection errors: the API server is away
            metrics.SUMMARY_WRITES.labels(kind=kind, operation=operation, result="failure").inc()
            raise Transient(str(exc) or type(exc).__name__) from exc
        metrics.SUMMARY_WRITES.labels(kind=kind, operation=operation, result="success").inc()
        return True

    async def apply(self, obj: dict[str, Any], *, plural: str) -> bool:
        meta = obj["metadata"]
        return await self._send(obj["kind"], "apply", self.client.custom.patch_namespaced_custom_object,
                                GROUP, VERSION, meta["namespace"], plural, meta["name"], obj,
                                field_manager=FIELD_MANAGER, force=True, _content_type=APPLY)

    async def delete(self, *, kind: str, plural: str, namespace: str, name: str) -> bool:
        return await self._send(kind, "delete", self.client.custom.delete_namespaced_custom_object,
                                GROUP, VERSION, namespace, plural, name)

    async def list(self, *, plural: str, label_selector: str) -> list[dict[str, Any]]:
        """Every object of ``plural`` in the cluster with these labels (reads are not paced)."""
        items: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": label_selector, "limit": LIST_PAGE}
            if token:
                kwargs["_continue"] = token
            page = await self.client.call(self.client.custom.list_cluster_custom_object, GROUP, VERSION, plural,
                                          timeout=max(self.client.timeout, 30.0), **kwargs)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items


@dataclasses.dataclass
class PassReport:
    leader: bool = False
    resynced: bool = False
    changes: int = 0
    applied: int = 0
    deleted: int = 0
    skipped: int = 0       # unchanged since last written
    refused: int = 0       # the API server refused them for good
    metrics_applied: int = 0
    caught_up: bool = True
    error: str | None = None


Key = tuple[str, str]  # (namespace, name)


class Summariser:
    def __init__(self, client: KubeClient, *, pool: asyncpg.Pool, cluster_id: str, gate_namespace: str,
                 interval: float = 10.0, writes_per_second: float = 5.0, burst: int = 10, settle: float = 2.0,
                 retention: datetime.timedelta = datetime.timedelta(days=90), resync_interval: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.cluster_id = cluster_id
        self.gate_namespace = gate_namespace
        self.interval = interval
        self.settle = datetime.timedelta(seconds=settle)
        self.retention = retention
        self.resync_interval = resync_interval
        self.clock = clock
        self.batch = max(1, int(writes_per_second * interval)) + burst
        # The metrics read every assessed action of 30 days: not more often than every 6 passes.
        self.metrics_every = 6 * interval
        self._metrics_at: float | None = None
        self.repository = SummaryRepository(pool, cluster_id=cluster_id)
        self.scores = EffectivenessRepository(pool, cluster_id=cluster_id)
        self.lock = LeaderLock(pool, name=f"safety-gate/summaries/{cluster_id}")
        self.writer = SummaryWriter(client, bucket=TokenBucket(rate=writes_per_second, burst=burst, clock=clock),
                                    clock=clock)
        self.selector = (f"app.kubernetes.io/managed-by=safety-gate,"
                         f"{GROUP}/cluster-id={dns_name(cluster_id)[:63]}")
        self._written: dict[str, dict[Key, str]] = {ahs.PLURAL: {}, em.PLURAL: {}}  # plural → key → digest
        self._resynced_at: float | None = None
        self._assessed_seen: object = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="summariser")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.lock.release()
        except Exception:  # noqa: BLE001 - the pool may be closing; the session ends with it anyway
            logger.debug("releasing the summariser lock failed", exc_info=True)

    async def _loop(self) -> None:
        await asyncio.sleep(min(self.interval, 5.0))
        while True:
            try:
                report = await self.run_pass()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("summary pass: PostgreSQL unavailable (%s); next try in %ss", exc, self.interval)
                report = PassReport(caught_up=True)
            except Exception:  # anything else must not end the loop either
                logger.exception("summary pass failed; next try in %ss", self.interval)
                report = PassReport(caught_up=True)
            # Behind (a storm, a backfill): go on at once; the token bucket sets the pace.
            await asyncio.sleep(0 if report.leader and not report.caught_up and report.error is None
                                else self.interval)

    # -- one pass ----------------------------------------------------------------------------

    async def run_pass(self) -> PassReport:
        report = PassReport()
        was_leader = self.lock.held
        if not await self.lock.hold():
            if was_leader:
                logger.info("summaries: lost the lead")
            self._forget()
            return report
        report.leader = True
        if not was_leader:
            logger.info("summaries: this replica leads")
            self._forget()
        try:
            due = self._resynced_at is None or self.clock() - self._resynced_at >= self.resync_interval
            if due and not await self.resync(report):
                return report
            now = await self.repository.database_now()
            await self._summarise_targets(now, report)
            await self._summarise_effectiveness(now, report)
        except Transient as exc:
            report.error = str(exc)
            report.caught_up = False
            logger.warning("summaries: the API server refused a write (%s); retrying next pass", exc)
        return report

    def _forget(self) -> None:
        """What this replica knew of the objects may be stale once another replica has led."""
        for written in self._written.values():
            written.clear()
        self._resynced_at = None
        self._assessed_seen = None
        self._metrics_at = None

    async def resync(self, report: PassReport) -> bool:
        """Learn what exists (and what it says), and delete summaries of targets idle past retention.
        False when the CRDs are not installed: nothing is written until they are."""
        try:
            summaries = await self.writer.list(plural=ahs.PLURAL, label_selector=self.selector)
            metric_objects = await self.writer.list(plural=em.PLURAL, label_selector=self.selector)
        except ApiException as exc:
            if is_status(exc, 404):
                logger.warning("summaries: the ActionHistorySummary/EffectivenessMetric CRDs are not installed")
                return False
            raise Transient(f"{exc.status} {exc.reason}") from exc
        except Exception as exc:
            raise Transient(str(exc) or type(exc).__name__) from exc
        for plural, objects in ((ahs.PLURAL, summaries), (em.PLURAL, metric_objects)):
            self._written[plural] = {(o["metadata"]["namespace"], o["metadata"]["name"]): digest(o) for o in objects}
        now = await self.repository.database_now()
        active = {(t.home(self.gate_namespace), ahs.summary_name(t))
                  for t in await self.repository.active_targets(since=now - self.retention)}
        for namespace, name in sorted(set(self._written[ahs.PLURAL]) - active):
            await self._delete(ahs.KIND, ahs.PLURAL, (namespace, name), report)
        self._resynced_at = self.clock()
        self._assessed_seen = self._metrics_at = None  # recompute the metrics: the 30-day window moved
        report.resynced = True
        return True

    async def _summarise_targets(self, now: datetime.datetime, report: PassReport) -> None:
        until = now - self.settle
        cursor = await self.repository.cursor() or await self.repository.first_cursor()
        if cursor is None:  # no history at all yet
            await self.repository.save_cursor(Cursor(at=until))
            return
        window_end = min(until, cursor.at + WINDOW)
        changes = await self.repository.changed(after=cursor, until=window_end, limit=self.batch)
        report.changes = len(changes)
        facts = {f.target.key: f for f in await self.repository.facts([c.target for c in changes], now=now)}
        active_since = now - self.retention
        try:
            for change in changes:
                await self._summarise(change, facts.get(change.target.key), active_since=active_since,
                                      report=report)
                cursor = change.cursor
            if len(changes) < self.batch:  # every change up to the window's end is done
                cursor = Cursor(at=window_end)
        finally:
            await self.repository.save_cursor(cursor)
            report.caught_up = cursor.at >= until
            metrics.SUMMARY_LAG.set(max(0.0, (now - cursor.at).total_seconds()))

    async def _summarise(self, change: Change, facts: ahs.TargetFacts | None, *, active_since: datetime.datetime,
                         report: PassReport) -> None:
        key = (change.target.home(self.gate_namespace), ahs.summary_name(change.target))
        if facts is None or facts.last_action_at is None or facts.last_action_at < active_since:
            if key in self._written[ahs.PLURAL]:
                await self._delete(ahs.KIND, ahs.PLURAL, key, report)
            return
        await self._apply(ahs.PLURAL, ahs.target_summary(facts, cluster_id=self.cluster_id,
                                                         cluster_namespace=self.gate_namespace), report)

    async def _summarise_effectiveness(self, now: datetime.datetime, report: PassReport) -> None:
        if self._metrics_at is not None and self.clock() - self._metrics_at < self.metrics_every:
            return
        assessed = await self.repository.last_assessed()
        if self._assessed_seen is not None and assessed == self._assessed_seen:
            return
        self._metrics_at = self.clock()
        actions = scored_actions(await self.scores.scored(since=now - em.PERIOD, until=now))
        objects = em.effectiveness_metrics(actions, gate_namespace=self.gate_namespace, cluster_id=self.cluster_id)
        for obj in objects:
            obj["status"]["lastAnalysis"] = rfc3339(now)
            if await self._apply(em.PLURAL, obj, report):
                report.metrics_applied += 1
        wanted = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects}
        for key in sorted(set(self._written[em.PLURAL]) - wanted):
            await self._delete(em.KIND, em.PLURAL, key, report)
        self._assessed_seen = assessed if assessed is not None else "none"

    async def _apply(self, plural: str, obj: dict[str, Any], report: PassReport) -> bool:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        content = digest(obj)
        if self._written[plural].get(key) == content:
            report.skipped += 1
            return False
        if await self.writer.apply(obj, plural=plural):
            self._written[plural][key] = content
            report.applied += 1
            return True
        report.refused += 1
        return False

    async def _delete(self, kind: str, plural: str, key: Key, report: PassReport) -> None:
        if await self.writer.delete(kind=kind, plural=plural, namespace=key[0], name=key[1]):
            report.deleted += 1
        self._written[plural].pop(key, None)
