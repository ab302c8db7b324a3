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
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from webhook.admission.extract import Proposal
from webhook.kube.client import KubeClient, is_status
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
