"""The OscillationAlert writer: every detection and refusal becomes visible with ``kubectl get oa``.

Why a queue: the decision is on the API server's clock (the webhook has 3 seconds), and the
alert is for people. ``Gate.on_remembered`` calls :meth:`AlertWriter.submit`, which only puts a
small piece of work on a bounded queue and returns; one background task writes alerts in
order, retrying with exponential backoff. A slow or unreachable API server therefore never
slows a decision — at worst alerts arrive late, or (queue full, retries exhausted) are dropped
and counted in ``safety_gate_alert_writer_failures_total``. PostgreSQL
(``oscillation_detections``) stays the record the engine reads; the alert is its view.

One alert per target and pattern (``AlertUpdate.namespace``/``name``). Spec is what was
detected (merge-patched, so a person's ``spec.approval`` is never touched); status is written
through the status subresource with the object's resourceVersion, so concurrent gate replicas
retry on conflict instead of losing each other's counts.

Lifecycle (``status.phase``): ``Active`` (cooling period, block, alternative, warn/dryrun),
``PendingApproval`` (escalated), ``Approved`` (an approval let one action through), ``Expired``
(set by the sweep: an Active alert whose ``cooldownUntil`` passed, or any open alert untouched
for ``alert_stale_hours``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from webhook.actions.model import TargetRef, rfc3339
from webhook.decision.decide import AlertUpdate, Decision, Outcome, Phase
from webhook.detection.registry import Scope, spec_of
from webhook.kube.client import ALERT_KIND, ALERTS, API_VERSION, GROUP, VERSION, Backoff, KubeClient, is_status
from webhook.metrics import ALERT_WRITER_FAILURES
from webhook.policy.model import PatternType

logger = logging.getLogger(__name__)

EVIDENCE_LIMIT = 50
MANAGED_BY = {"app.kubernetes.io/managed-by": "safety-gate"}
PATTERN_LABEL = "ai.prometheus-alerts-slm.io/pattern-type"
PERMANENT = (400, 403, 404, 422)  # retrying cannot help: the request or RBAC is wrong, or the namespace is gone
MAX_CONFLICTS = 8


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


# --- what to write: pure ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AlertWork:
    """One change to one alert, derived from one remembered decision."""

    namespace: str
    name: str
    at: datetime.datetime
    spec: Mapping[str, Any] | None          # None: a refusal by an existing restriction (status only)
    phase: str | None = None
    new_occurrence: bool = False
    denied: bool = False    # the gate refused the request (DENIED)
    warned: bool = False    # admitted with the refusal as a warning: warn mode, or a person (WARNED)
    cooldown_until: datetime.datetime | None = None
    evidence: tuple[Mapping[str, Any], ...] = ()
    message: str | None = None
    approval_used_by: str | None = None     # the actor whose action used an approval

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def work_for(decision: Decision, *, cluster_id: str) -> AlertWork | None:
    """What a remembered decision means for the alerts; None when it touches none."""
    alert = decision.alert
    if alert is not None:
        used_by = decision.event.actor if decision.consume is not None else None
        return AlertWork(
            namespace=alert.namespace, name=alert.name, at=decision.event.at,
            spec=alert_spec(alert, cluster_id=cluster_id),
            phase=Phase.APPROVED if used_by else alert.phase,
            new_occurrence=alert.new_occurrence, denied=alert.denied,
            warned=decision.outcome is Outcome.WARN, cooldown_until=alert.cooldown_until,
            evidence=tuple(e.evidence() for e in alert.evidence), message=alert.summary,
            approval_used_by=used_by,
        )
    refused_by = decision.refused_by
    if refused_by is not None and decision.outcome in (Outcome.DENY, Outcome.WARN) and "/" in refused_by.alert:
        namespace, name = refused_by.alert.split("/", 1)
        denied = decision.outcome is Outcome.DENY
        return AlertWork(namespace=namespace, name=name, at=decision.event.at, spec=None, denied=denied,
                         warned=not denied, message=decision.message if denied else None)
    return None


def target_ref(*, pattern: PatternType, alert_name: str, target: TargetRef | None,
               cluster_id: str) -> dict[str, str]:
    """What an alert is about: the workload, or for an actor-scoped pattern (cascading-failure) the
    actor's scope (its namespace, or the cluster). The one rule for the cluster's alerts and ``safety-gate alerts``
    read from PostgreSQL, so both name the same target."""
    if spec_of(pattern).scope is Scope.ACTOR or target is None:  # about an actor in a scope, not a workload
        if alert_name.endswith("-cluster") or target is None:
            return {"kind": "Cluster", "name": cluster_id}
        return {"apiVersion": "v1", "kind": "Namespace", "name": target.namespace}
    if target.cluster_scoped:  # a Node: the alert itself lives in the gate's namespace
        return {"apiVersion": target.api_version or "v1", "kind": target.kind, "name": target.name}
    return {"apiVersion": target.api_version or "apps/v1", "kind": target.kind, "namespace": target.namespace,
            "name": target.name}


def target_text(ref: Mapping[str, str]) -> str:
    return f"{ref['kind']}/{ref['name']}"


def alert_spec(alert: AlertUpdate, *, cluster_id: str) -> dict[str, Any]:
    """``spec`` of the alert (the CRD's field names); ``approval`` is people's and never written here."""
    ref = target_ref(pattern=alert.pattern, alert_name=alert.name, target=alert.target, cluster_id=cluster_id)
    spec: dict[str, Any] = {
        "targetRef": ref,
        "target": target_text(ref),
        "patternType": alert.pattern.value,
        "severity": alert.severity.value,
        "confidence": max(0.0, min(1.0, float(alert.confidence))),
        "strategy": alert.strategy.value,
        "enforcementAction": alert.enforcement.value,
        "actor": alert.actor,
        "message": alert.message,
        "clusterId": cluster_id,
    }
    if alert.alternative:
        spec["alternative"] = alert.alternative
    return spec


def next_status(current: Mapping[str, Any], work: AlertWork, *, generation: int | None) -> dict[str, Any]:
    """The status after ``work``: counters add up, evidence merges by request uid (latest 50)."""
    status = dict(current)
    when = rfc3339(work.at)
    status.setdefault("occurrences", 0)
    status.setdefault("deniedRequests", 0)
    status.setdefault("warnedRequests", 0)
    status.setdefault("firstSeen", when)
    status["lastSeen"] = max(when, status.get("lastSeen") or when)
    if work.new_occurrence:
        status["occurrences"] = int(status["occurrences"]) + 1
    if work.denied:
        status["deniedRequests"] = int(status["deniedRequests"]) + 1
    if work.warned:
        status["warnedRequests"] = int(status["warnedRequests"]) + 1
    if work.phase:
        status["phase"] = work.phase
    elif "phase" not in status:
        status["phase"] = Phase.ACTIVE
    if work.cooldown_until is not None:
        status["cooldownUntil"] = rfc3339(work.cooldown_until)
    if work.evidence:
        status["evidence"] = merge_evidence(status.get("evidence") or [], work.evidence)
    if work.message:
        status["message"] = work.message
    if work.approval_used_by:
        status["approvalUsedAt"] = when
        status["approvalUsedBy"] = work.approval_used_by
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def merge_evidence(existing: list[Mapping[str, Any]], new: tuple[Mapping[str, Any], ...]) -> list[dict[str, Any]]:
    by_uid: dict[str, dict[str, Any]] = {}
    for item in [*existing, *new]:
        uid = str(item.get("requestUid") or f"{item.get('timestamp')}/{item.get('summary')}")
        by_uid[uid] = dict(item)
    ordered = sorted(by_uid.values(), key=lambda item: str(item.get("timestamp") or ""))
    return ordered[-EVIDENCE_LIMIT:]


def expired_status(obj: Mapping[str, Any], *, now: datetime.datetime,
                   stale_after: datetime.timedelta) -> dict[str, Any] | None:
    """The status the sweep writes, or None to leave the alert alone.

    An Active alert whose cooling period or block has ended is over; any open alert (Active,
    PendingApproval, Approved) nobody has touched for ``stale_after`` is too.
    """
    status = dict(obj.get("status") or {})
    phase = status.get("phase")
    if phase not in (Phase.ACTIVE, Phase.PENDING_APPROVAL, Phase.APPROVED):
        return None
    until = parse_time(status.get("cooldownUntil"))
    last = parse_time(status.get("lastSeen")) or parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    if phase == Phase.ACTIVE and until is not None and until <= now:
        status["message"] = f"expired: the {(obj.get('spec') or {}).get('strategy', 'restriction')} ended at {rfc3339(until)}"
    elif last is not None and now - last >= stale_after:
        status["message"] = f"expired: no activity since {rfc3339(last)}"
    else:
        return None
    status["phase"] = Phase.EXPIRED
    return status


# --- writing: I/O -------------------------------------------------------------------------------


class AlertWriter:
    """Bounded queue in, OscillationAlerts out; plus the periodic expiry sweep."""

    def __init__(self, client: KubeClient, *, cluster_id: str, queue_size: int = 1000, max_attempts: int = 6,
                 sweep_every: float = 60.0, stale_after: datetime.timedelta = datetime.timedelta(hours=24),
                 clock: Callable[[], datetime.datetime] = utcnow) -> None:
        self.client = client
        self.cluster_id = cluster_id
        self.queue: asyncio.Queue[AlertWork] = asyncio.Queue(maxsize=queue_size)
        self.max_attempts = max_attempts
        self.sweep_every = sweep_every
        self.stale_after = stale_after
        self.clock = clock
        self._tasks: list[asyncio.Task[None]] = []

    # called by the Gate in the event loop, after a decision is stored: never blocks, never raises
    def submit(self, decision: Decision) -> None:
        try:
            work = work_for(decision, cluster_id=self.cluster_id)
            if work is None:
                return
            self.queue.put_nowait(work)
        except asyncio.QueueFull:
            ALERT_WRITER_FAILURES.inc()
            logger.warning("alert queue full (%d): dropping the update of %s", self.queue.maxsize,
                           work.key if work is not None else decision.event.uid)
        except Exception:  # noqa: BLE001 - the decision is already made; an alert must not undo it
            ALERT_WRITER_FAILURES.inc()
            logger.exception("cannot queue the alert of %s", decision.event.uid)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_loop(), name="alert-writer"),
                       asyncio.create_task(self._sweep_loop(), name="alert-sweep")]

    async def stop(self, *, drain: float = 2.0) -> None:
        """Give queued alerts a moment to be written, then stop."""
        if self._tasks and not self.queue.empty():
            try:
                await asyncio.wait_for(self.queue.join(), drain)
            except TimeoutError:
                logger.warning("stopping with %d alert update(s) unwritten", self.queue.qsize())
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []

    async def _write_loop(self) -> None:
        while True:
            work = await self.queue.get()
            try:
                await self.write(work)
            finally:
                self.queue.task_done()

    async def write(self, work: AlertWork) -> bool:
        """Write one update, retrying with backoff; False when it was given up (and counted)."""
        backoff = Backoff(base=0.25, cap=8.0)
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._apply(work)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is counted; some are retried
                ALERT_WRITER_FAILURES.inc()
                if is_status(exc, *PERMANENT) or attempt == self.max_attempts:
                    logger.error("giving up on OscillationAlert %s after %d attempt(s): %s", work.key, attempt,
                                 _describe(exc))
                    return False
                delay = backoff.next()
                logger.warning("writing OscillationAlert %s failed (%s); retry in %.2fs", work.key,
                               _describe(exc), delay)
                await asyncio.sleep(delay)
        return False

    async def _apply(self, work: AlertWork) -> None:
        custom = self.client.custom
        for _ in range(MAX_CONFLICTS):
            obj = await self._get(work)
            if obj is None:
                if work.spec is None:
                    logger.info("refusal by %s, but the alert does not exist (deleted?): not recreated", work.key)
                    return
                try:
                    obj = cast("dict[str, Any]", await self.client.call(
                        custom.create_namespaced_custom_object, GROUP, VERSION, work.namespace, ALERTS,
                        self._new_object(work)))
                except Exception as exc:
                    if is_status(exc, 409):  # another replica created it first
                        continue
                    raise
            elif work.spec is not None and _differs(obj.get("spec") or {}, work.spec):
                obj = cast("dict[str, Any]", await self.client.call(
                    custom.patch_namespaced_custom_object, GROUP, VERSION, work.namespace, ALERTS, work.name,
                    {"spec": dict(work.spec)}))
            meta = obj["metadata"]
            body = {
                "apiVersion": API_VERSION, "kind": ALERT_KIND,
                "metadata": {"name": work.name, "namespace": work.namespace,
                             "resourceVersion": meta["resourceVersion"]},
                "status": next_status(obj.get("status") or {}, work, generation=meta.get("generation")),
            }
            try:
                await self.client.call(custom.replace_namespaced_custom_object_status, GROUP, VERSION,
                                       work.namespace, ALERTS, work.name, body)
                return
            except Exception as exc:
                if is_status(exc, 409):  # changed since we read it: read again and recount
                    continue
                raise
        raise RuntimeError(f"OscillationAlert {work.key} kept changing under {MAX_CONFLICTS} attempts")

    async def _get(self, work: AlertWork) -> dict[str, Any] | None:
        try:
            return await self.client.call(self.client.custom.get_namespaced_custom_object, GROUP, VERSION,
                                          work.namespace, ALERTS, work.name)
        except Exception as exc:
            if is_status(exc, 404):
                return None
            raise

    def _new_object(self, work: AlertWork) -> dict[str, Any]:
        assert work.spec is not None
        return {
            "apiVersion": API_VERSION, "kind": ALERT_KIND,
            "metadata": {"name": work.name, "namespace": work.namespace,
                         "labels": {**MANAGED_BY, PATTERN_LABEL: str(work.spec["patternType"])}},
            "spec": dict(work.spec),
        }

    # --- expiry -------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - try again next round
                logger.warning("alert expiry sweep failed: %s", _describe(exc))

    async def sweep(self) -> int:
        """Move ended and stale alerts to ``Expired``; returns how many were moved."""
        custom = self.client.custom
        listing = await self.client.call(custom.list_cluster_custom_object, GROUP, VERSION, ALERTS)
        now = self.clock()
        moved = 0
        for obj in listing.get("items") or []:
            status = expired_status(obj, now=now, stale_after=self.stale_after)
            if status is None:
                continue
            meta = obj["metadata"]
            body = {"apiVersion": API_VERSION, "kind": ALERT_KIND,
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                 "resourceVersion": meta["resourceVersion"]},
                    "status": status}
            try:
                await self.client.call(custom.replace_namespaced_custom_object_status, GROUP, VERSION,
                                       meta["namespace"], ALERTS, meta["name"], body)
                moved += 1
            except Exception as exc:  # noqa: BLE001 - 409: it just changed (a new detection); next round decides
                if not is_status(exc, 404, 409):
                    logger.warning("cannot expire %s/%s: %s", meta["namespace"], meta["name"], _describe(exc))
        return moved


def _differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in wanted.items())


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status is not None:
        return f"{status} {getattr(exc, 'reason', '') or ''}".strip()
    return f"{type(exc).__name__}: {exc}"
