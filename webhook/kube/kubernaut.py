"""Kubernaut's business context for the PipelineRuns it creates (DESIGN §2).

Kubernaut's WorkflowExecution controller builds every PipelineRun the same way: a name derived
from the target (``wfe-<sha256(target)[:16]>``), a bundle-resolved ``pipelineRef`` without a
name, the workflow's params plus ``TARGET_RESOURCE``, and labels naming the WorkflowExecution
(``kubernaut.ai/workflow-execution``, in ``kubernaut.ai/source-namespace``) and the catalog
workflow (``kubernaut.ai/workflow-id``, a UUID). No alert name appears anywhere on it: the
business context lives in the business CRDs (seed 003), so the gate reads them:

* the ``kubernaut.ai/v1alpha1`` **WorkflowExecution**: ``spec.workflowRef.workflowId`` (the
  remediation), ``spec.workflowRef.actionType`` when the catalog recorded one (the action type),
  ``spec.remediationRequestRef`` (its parent);
* its **RemediationRequest**: ``spec.signalName`` (the alert the remediation answers); its name
  is the correlation id Kubernaut's EffectivenessAssessments carry (``spec.correlationID``).

What the request itself says wins (label ``P/action-type``, param ``ACTION_TYPE``/``ALERT_NAME``,
...). Without those objects (not found, not readable, too slow) the workflow id stands for the
remediation and for the action type, as it did before. Both objects' specs are immutable in
Kubernaut, so a found context is cached for minutes; a miss is cached briefly. Each request waits
at most ``budget`` seconds (inside the webhook's 3s), the cache holds at most ``max_entries``
WorkflowExecutions.

Where Kubernaut's **EffectivenessAssessment** CRD exists, :class:`AssessmentWatch` records each
completed assessment's weighted score (health 0.40, alert 0.35, metrics 0.25) on the actions that
carry its ``spec.correlationID`` (the RemediationRequest's name), through the same path as
``POST /api/v1/actions/{id}/effectiveness``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from webhook.admission.extract import Proposal
from webhook.effectiveness.model import Assessment, Criteria, Method
from webhook.effectiveness.service import EffectivenessService
from webhook.kube.client import KubeClient, is_status
from webhook.kube.informer import Informer
from webhook.kube.lookups import BoundedCache

logger = logging.getLogger(__name__)

GROUP = "kubernaut.ai"
VERSION = "v1alpha1"
WORKFLOW_EXECUTIONS = "workflowexecutions"
REMEDIATION_REQUESTS = "remediationrequests"


@dataclasses.dataclass(frozen=True)
class KubernautContext:
    """What a WorkflowExecution and its RemediationRequest say about one PipelineRun."""

    workflow_id: str | None = None
    action_type: str | None = None
    signal_name: str | None = None
    remediation_request: str | None = None  # its name: Kubernaut's correlation id


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def remediation_request_ref(workflow_execution: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(namespace, name)`` of the WorkflowExecution's parent (its namespace when the ref has none)."""
    spec = workflow_execution.get("spec") or {}
    ref = spec.get("remediationRequestRef") if isinstance(spec, dict) else None
    if not isinstance(ref, dict) or not _text(ref.get("name")):
        return None
    namespace = _text(ref.get("namespace")) or _text((workflow_execution.get("metadata") or {}).get("namespace"))
    return (namespace or "", str(_text(ref.get("name"))))


def context_of(workflow_execution: Mapping[str, Any],
               remediation_request: Mapping[str, Any] | None) -> KubernautContext:
    """The context the two objects give; fields they lack stay None. Pure."""
    spec = workflow_execution.get("spec") or {}
    workflow = spec.get("workflowRef") if isinstance(spec, dict) else None
    workflow = workflow if isinstance(workflow, dict) else {}
    ref = remediation_request_ref(workflow_execution)
    signal = None
    if remediation_request is not None:
        rr_spec = remediation_request.get("spec") or {}
        signal = _text(rr_spec.get("signalName")) if isinstance(rr_spec, dict) else None
    return KubernautContext(
        workflow_id=_text(workflow.get("workflowId")),
        action_type=_text(workflow.get("actionType")),
        signal_name=signal,
        remediation_request=ref[1] if ref else None,
    )


def apply_context(proposal: Proposal, context: KubernautContext | None) -> Proposal:
    """The proposal with the context filled in where the request did not say. Pure.

    Precedence (DESIGN §2): the request's own action type, else the WorkflowExecution's, else
    the workflow id; the request's own alert name, else the RemediationRequest's signal name.
    """
    if context is None:
        return proposal
    event = proposal.event
    remediation = event.remediation or context.workflow_id
    action_type = event.action_type
    if not proposal.action_type_given:
        action_type = context.action_type or remediation or action_type
    event = event.replace(
        action_type=action_type,
        remediation=remediation,
        alert_name=event.alert_name or context.signal_name,
        correlation_id=event.correlation_id or context.remediation_request,
    )
    return dataclasses.replace(proposal, event=event)


class KubernautLookups:
    """Reads WorkflowExecutions and RemediationRequests for the decision path, cached and bounded."""

    def __init__(self, client: KubeClient, *, ttl: float = 300.0, miss_ttl: float = 5.0, budget: float = 1.0,
                 request_timeout: float = 0.8, max_entries: int = 4096) -> None:
        self.client = client
        self.request_timeout = request_timeout
        self._contexts: BoundedCache[KubernautContext] = BoundedCache(
            ttl=ttl, error_ttl=miss_ttl, none_ttl=miss_ttl, budget=budget, max_entries=max_entries)

    async def context_for(self, proposal: Proposal) -> Proposal:
        """The proposal with its Kubernaut context; unchanged when there is none or it cannot be read."""
        if proposal.workflow_execution is None:
            return proposal
        namespace, name = proposal.workflow_execution
        if not namespace or not name:
            return proposal
        try:
            context = await self._contexts.get(f"wfe:{namespace}/{name}",
                                               lambda: self._load(namespace=namespace, name=name))
        except Exception:  # noqa: BLE001 - the decision goes on with what the request says
            logger.exception("reading the Kubernaut context of %s/%s failed", namespace, name)
            return proposal
        return apply_context(proposal, context)

    async def _load(self, *, namespace: str, name: str) -> KubernautContext | None:
        workflow_execution = await self._get(WORKFLOW_EXECUTIONS, namespace, name)
        if workflow_execution is None:
            logger.info("WorkflowExecution %s/%s not found: its workflow id stands for the remediation",
                        namespace, name)
            return None
        ref = remediation_request_ref(workflow_execution)
        remediation_request = await self._get(REMEDIATION_REQUESTS, *ref) if ref and ref[0] else None
        return context_of(workflow_execution, remediation_request)

    async def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: Any = await self.client.call(self.client.custom.get_namespaced_custom_object, GROUP, VERSION,
                                                namespace, plural, name, timeout=self.request_timeout)
        except Exception as exc:
            if is_status(exc, 404):  # the object, or the CRD itself: Kubernaut is not installed
                return None
            raise
        return found if isinstance(found, dict) else None


# --- EffectivenessAssessments --------------------------------------------------------------------

EFFECTIVENESS_ASSESSMENTS = "effectivenessassessments"
# Kubernaut's Effectiveness Monitor weighs its components so; the gate uses the same weights over
# the components that were assessed (a component Kubernaut could not assess, e.g. metrics without
# Prometheus, is left out rather than counted as 0).
COMPONENT_WEIGHTS = (("healthScore", 0.40), ("alertScore", 0.35), ("metricsScore", 0.25))
PASSING = 0.5  # a component score at or above this says its criterion held


@dataclasses.dataclass(frozen=True)
class KubernautAssessment:
    """One completed EffectivenessAssessment, ready for ``EffectivenessService.assess_correlation``."""

    correlation_id: str       # the RemediationRequest's name, which the runs it caused carry
    assessment: Assessment
    key: str                  # namespace/name of the EffectivenessAssessment


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def weighted_score(components: Mapping[str, Any]) -> float | None:
    """0.40 × health + 0.35 × alert + 0.25 × metrics, over the assessed components; None if none. Pure."""
    scored = [(weight, _score(components.get(name))) for name, weight in COMPONENT_WEIGHTS]
    present = [(weight, score) for weight, score in scored if score is not None]
    if not present:
        return None
    return round(sum(weight * score for weight, score in present) / sum(weight for weight, _ in present), 6)


def assessment_of(obj: Mapping[str, Any]) -> KubernautAssessment | None:
    """The assessment a *Completed* EffectivenessAssessment gives, or None (not finished, no
    correlation id, nothing assessed: ``no_execution``, ``expired``). Pure."""
    spec = found if isinstance(found := obj.get("spec"), dict) else {}
    status = found if isinstance(found := obj.get("status"), dict) else {}
    correlation_id = _text(spec.get("correlationID"))
    if status.get("phase") != "Completed" or correlation_id is None:
        return None
    components = found if isinstance(found := status.get("components"), dict) else {}
    score = weighted_score(components)
    if score is None:
        return None
    health, alert, metrics = (_score(components.get(name)) for name, _ in COMPONENT_WEIGHTS)

    def held(value: float | None) -> bool:
        return value is not None and value >= PASSING

    meta = found if isinstance(found := obj.get("metadata"), dict) else {}
    key = f"{meta.get('namespace')}/{meta.get('name')}"
    parts = [f"{name} {value:g}" for name, value in (("health", health), ("alert", alert), ("metrics", metrics))
             if value is not None]
    reason = _text(status.get("assessmentReason")) or "completed"
    assessment = Assessment(
        score=score,
        method=Method.AUTOMATED,
        criteria=Criteria(alertResolved=held(alert), targetMetricImproved=held(metrics),
                          noNewAlertsGenerated=held(alert), resourceStabilized=held(health),
                          sideEffectsMinimal=held(health)),
        notes=f"Kubernaut EffectivenessAssessment {key} ({reason}): {', '.join(parts)}",
    )
    return KubernautAssessment(correlation_id=correlation_id, assessment=assessment, key=key)


class AssessmentWatch:
    """Records Kubernaut's completed EffectivenessAssessments on the actions of their remediation.

    Runs only where Kubernaut is installed: it probes for the CRD (a ``limit=1`` list) every
    ``probe_every`` seconds until it exists, then lists and watches. Each assessment is applied
    once per score; an assessed success then ends an ineffective-loop, a failure counts toward it.
    """

    def __init__(self, client: KubeClient, *, effectiveness: EffectivenessService,
                 clock: Callable[[], datetime.datetime] | None = None, probe_every: float = 60.0) -> None:
        self.client = client
        self.effectiveness = effectiveness
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.probe_every = probe_every
        self._applied: dict[str, float] = {}   # EffectivenessAssessment uid -> score applied
        self._task: asyncio.Task[None] | None = None
        self.informer = Informer(
            client, name="effectiveness-assessments",
            list_fn=functools.partial(client.custom.list_cluster_custom_object, GROUP, VERSION,
                                      EFFECTIVENESS_ASSESSMENTS),
            on_sync=self._on_sync, on_event=self._on_event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kubernaut-assessments")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.informer.stop()

    async def _run(self) -> None:
        announced = False
        while not await self._crd_exists():
            if not announced:
                logger.info("no kubernaut.ai/v1alpha1 EffectivenessAssessments here; looking again every %.0fs",
                            self.probe_every)
                announced = True
            await asyncio.sleep(self.probe_every)
        logger.info("watching Kubernaut's EffectivenessAssessments")
        self.informer.start()

    async def _crd_exists(self) -> bool:
        try:
            await self.client.call(self.client.custom.list_cluster_custom_object, GROUP, VERSION,
                                   EFFECTIVENESS_ASSESSMENTS, limit=1)
            return True
        except Exception as exc:  # noqa: BLE001 - absent (404) or not yet reachable: probe again
            if not is_status(exc, 404):
                logger.warning("probing for EffectivenessAssessments failed: %s", getattr(exc, "reason", exc))
            return False

    async def _on_sync(self, items: list[dict[str, Any]]) -> None:
        for obj in items:
            try:
                await self.consider(obj)
            except Exception:  # noqa: BLE001 - one assessment must not stop the others
                logger.exception("recording the Kubernaut assessment %s failed",
                                 (obj.get("metadata") or {}).get("name"))

    async def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind in ("ADDED", "MODIFIED"):
            await self.consider(obj)
        elif kind == "DELETED":
            self._applied.pop(str((obj.get("metadata") or {}).get("uid")), None)

    async def consider(self, obj: dict[str, Any]) -> int:
        """Apply the object's assessment if it is new; the number of actions it was recorded on."""
        found = assessment_of(obj)
        if found is None:
            return 0
        uid = str((obj.get("metadata") or {}).get("uid") or found.key)
        if self._applied.get(uid) == found.assessment.score:
            return 0
        assessed = await self.effectiveness.assess_correlation(found.correlation_id, found.assessment,
                                                               now=self.clock())
        self._applied[uid] = found.assessment.score
        logger.info("Kubernaut assessment %s: score %g on %d action(s) of remediation %s", found.key,
                    found.assessment.score, len(assessed), found.correlation_id)
        return len(assessed)
