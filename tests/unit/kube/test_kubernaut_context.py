"""Kubernaut's business context (webhook.kube.kubernaut): read from WorkflowExecution and
RemediationRequest objects shaped like the e2e fixtures, and applied to PipelineRun proposals
with the request's own words first (DESIGN §2)."""

from __future__ import annotations

import asyncio
import datetime
import hashlib

from webhook.admission.extract import extract
from webhook.admission.review import AdmissionRequest
from webhook.kube.kubernaut import KubernautContext, apply_context, context_of, remediation_request_ref
from webhook.kube.lookups import BoundedCache

NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)
ACTOR = "system:serviceaccount:kubernaut-system:workflowexecution-controller"
WORKFLOW_ID = "3f1b6c2e-8d4a-4f7e-9a51-2c6d0e9b7a10"
TARGET = "shop/deployment/cart"


def kubernaut_pipelinerun(*, params=(), labels=None) -> dict:
    """What BuildPipelineRun creates (Kubernaut v1.6): no alert name, no pipeline name."""
    return {
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {
            "name": "wfe-" + hashlib.sha256(TARGET.encode()).hexdigest()[:16],
            "namespace": "kubernaut-workflows",
            "labels": {"kubernaut.ai/workflow-execution": "we-cart-1", "kubernaut.ai/workflow-id": WORKFLOW_ID,
                       "kubernaut.ai/target-resource": TARGET.replace("/", "__"),
                       "kubernaut.ai/source-namespace": "kubernaut-system", **(labels or {})},
            "annotations": {"kubernaut.ai/target-resource": TARGET},
        },
        "spec": {"pipelineRef": {"resolver": "bundles", "params": [
                     {"name": "bundle", "value": "quay.io/kubernaut/workflows/restart@sha256:00"},
                     {"name": "name", "value": "workflow"}, {"name": "kind", "value": "pipeline"}]},
                 "params": [*params, {"name": "TARGET_RESOURCE", "value": TARGET}]},
    }


def proposal_of(obj: dict):
    request = AdmissionRequest.model_validate({
        "uid": "u1", "kind": {"group": "tekton.dev", "version": "v1", "kind": "PipelineRun"},
        "resource": {"group": "tekton.dev", "version": "v1", "resource": "pipelineruns"},
        "namespace": "kubernaut-workflows", "operation": "CREATE", "userInfo": {"username": ACTOR},
        "object": obj})
    proposal = extract(request, now=NOW)
    assert proposal is not None
    return proposal


WFE = {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "WorkflowExecution",
       "metadata": {"name": "we-cart-1", "namespace": "kubernaut-system"},
       "spec": {"remediationRequestRef": {"kind": "RemediationRequest", "name": "rr-cart-1"},
                "workflowRef": {"workflowId": WORKFLOW_ID, "version": "1.0.0", "actionType": "RestartPod",
                                "executionBundle": "quay.io/kubernaut/workflows/restart@sha256:00"},
                "targetResource": TARGET}}
RR = {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest",
      "metadata": {"name": "rr-cart-1", "namespace": "kubernaut-system"},
      "spec": {"signalName": "KubePodCrashLooping", "signalFingerprint": "a" * 64}}


def test_extract_finds_the_target_the_workflow_and_the_workflow_execution():
    proposal = proposal_of(kubernaut_pipelinerun())
    event = proposal.event
    assert event.target is not None and (event.target.namespace, event.target.kind, event.target.name) == (
        "shop", "Deployment", "cart")
    assert event.action_type == WORKFLOW_ID and event.remediation == WORKFLOW_ID  # no WorkflowExecution read yet
    assert event.alert_name is None
    assert proposal.workflow_execution == ("kubernaut-system", "we-cart-1")
    assert proposal.action_type_given is False


def test_the_context_of_the_two_objects():
    assert remediation_request_ref(WFE) == ("kubernaut-system", "rr-cart-1")
    assert context_of(WFE, RR) == KubernautContext(workflow_id=WORKFLOW_ID, action_type="RestartPod",
                                                   signal_name="KubePodCrashLooping", remediation_request="rr-cart-1")
    # Without its RemediationRequest, or with neither an action type nor a ref: what there is.
    assert context_of(WFE, None).signal_name is None
    bare = {"metadata": {"name": "x", "namespace": "n"}, "spec": {"workflowRef": {"workflowId": WORKFLOW_ID}}}
    assert context_of(bare, None) == KubernautContext(workflow_id=WORKFLOW_ID)
    assert remediation_request_ref({"spec": {"remediationRequestRef": "nonsense"}}) is None


def test_the_context_fills_in_what_the_pipelinerun_does_not_say():
    enriched = apply_context(proposal_of(kubernaut_pipelinerun()), context_of(WFE, RR)).event
    assert enriched.action_type == "RestartPod"
    assert enriched.alert_name == "KubePodCrashLooping"
    assert enriched.correlation_id == "rr-cart-1"
    assert enriched.remediation == WORKFLOW_ID


def test_the_request_s_own_words_win():
    obj = kubernaut_pipelinerun(params=[{"name": "ACTION_TYPE", "value": "restart_pod"},
                                        {"name": "ALERT_NAME", "value": "CartDown"}])
    enriched = apply_context(proposal_of(obj), context_of(WFE, RR)).event
    assert (enriched.action_type, enriched.alert_name) == ("restart_pod", "CartDown")


def test_without_the_objects_the_workflow_id_stands():
    proposal = proposal_of(kubernaut_pipelinerun())
    assert apply_context(proposal, None) is proposal
    only_id = apply_context(proposal, KubernautContext(workflow_id=WORKFLOW_ID)).event
    assert (only_id.action_type, only_id.remediation, only_id.alert_name) == (WORKFLOW_ID, WORKFLOW_ID, None)


def test_the_remediation_round_trips_through_the_stored_json():
    event = apply_context(proposal_of(kubernaut_pipelinerun()), context_of(WFE, RR)).event
    assert type(event).from_json(event.to_json()) == event


def test_the_cache_is_bounded_and_keeps_the_newest():
    async def scenario() -> None:
        cache: BoundedCache[str] = BoundedCache(ttl=60, error_ttl=5, budget=1, max_entries=3)
        for index in range(5):
            async def load(value: str = f"v{index}") -> str:
                return value
            assert await cache.get(f"k{index}", load) == f"v{index}"
        assert len(cache) == 3

        async def never() -> str:
            raise AssertionError("k4 is cached")
        assert await cache.get("k4", never) == "v4"

    asyncio.run(scenario())
