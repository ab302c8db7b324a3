"""``POST /api/v1/safety-check``: what the gate would answer, with the reasons, recording nothing.

The body is either an AdmissionReview v1 (exactly what the API server would send) or a
:class:`~webhook.server.api.schemas.SafetyCheckAction`, which is turned into the admission
request it stands for: a ``scale`` subresource UPDATE when it changes replicas of a Deployment
or StatefulSet, otherwise a Tekton PipelineRun CREATE in the target's namespace carrying
``ACTION_TYPE``, ``TARGET_RESOURCE`` (and ``ALERT_NAME``) params, as Kubernaut creates them.
Either way the decision comes from ``Gate.review(request, record=False)``: the same code as
``/validate``, with no history, restriction, alert or decision written.
"""

from __future__ import annotations

import uuid
from typing import Any

import pydantic
from starlette.requests import Request
from starlette.responses import JSONResponse

from webhook.admission.extract import PREFIX, canonical_kind, extract
from webhook.admission.review import AdmissionRequest, BadReview, parse_review
from webhook.engine.gate import GateResult
from webhook.server.api import schemas
from webhook.server.api.body import read_object
from webhook.server.api.context import gate_of, utcnow
from webhook.server.api.errors import ApiError, validation_failed

SCALABLE = {"Deployment": "deployments", "StatefulSet": "statefulsets"}


def is_review(data: dict[str, Any]) -> bool:
    return "request" in data or "apiVersion" in data


async def check(request: Request) -> JSONResponse:
    raw, data = await read_object(request)
    if is_review(data):
        try:
            admission = parse_review(raw).request
        except BadReview as error:
            raise ApiError(400, f"not an AdmissionReview v1: {error}",
                           details=[{"loc": error.field, "msg": str(error)}] if error.field else None) from None
    else:
        try:
            action = schemas.SafetyCheckAction.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            raise validation_failed(exc) from None
        admission = admission_request(action)
    try:
        extract(admission, now=utcnow())
    except Exception as exc:  # noqa: BLE001 - the object is malformed in a way parsing did not catch
        raise ApiError(400, f"the request's object cannot be read: {type(exc).__name__}: {exc}") from None
    result = await gate_of(request).review(admission, record=False)
    return JSONResponse(schemas.dump(result_out(result)))


def _groups(action: schemas.SafetyCheckAction) -> list[str]:
    if action.groups is not None:
        return action.groups
    if action.actor.startswith("system:serviceaccount:"):
        namespace = action.actor.split(":")[2] if action.actor.count(":") >= 3 else ""
        return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    return ["system:authenticated"]


def admission_request(action: schemas.SafetyCheckAction) -> AdmissionRequest:
    kind = canonical_kind(action.kind)
    uid = f"safety-check-{uuid.uuid4()}"
    user = {"username": action.actor, "groups": _groups(action)}
    given = (action.replicas_before is not None, action.replicas_after is not None)
    if any(given) and not all(given):
        raise ApiError(422, "give both replicas_before and replicas_after, or neither",
                       details=[{"loc": "replicas_after" if given[0] else "replicas_before", "msg": "missing"}])
    annotations = {key: value for key, value in (
        (PREFIX + "alert-name", action.alert_name), (PREFIX + "correlation-id", action.correlation_id),
        (PREFIX + "model-used", action.model_used),
        (PREFIX + "confidence", None if action.confidence is None else str(action.confidence)),
    ) if value is not None}
    if all(given) and kind in SCALABLE:
        def scale(replicas: int | None) -> dict[str, Any]:
            return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": action.name, "namespace": action.namespace, "annotations": annotations},
                    "spec": {"replicas": replicas}}

        return AdmissionRequest.model_validate({
            "uid": uid, "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "resource": {"group": "apps", "version": "v1", "resource": SCALABLE[kind]}, "subResource": "scale",
            "name": action.name, "namespace": action.namespace, "operation": "UPDATE", "userInfo": user,
            "object": scale(action.replicas_after), "oldObject": scale(action.replicas_before), "dryRun": True,
        })
    run_params = [{"name": "ACTION_TYPE", "value": action.action_type},
                  {"name": "TARGET_RESOURCE", "value": f"{action.namespace}/{kind}/{action.name}"}]
    if action.alert_name:
        run_params.append({"name": "ALERT_NAME", "value": action.alert_name})
    return AdmissionRequest.model_validate({
        "uid": uid, "kind": {"group": "tekton.dev", "version": "v1", "kind": "PipelineRun"},
        "resource": {"group": "tekton.dev", "version": "v1", "resource": "pipelineruns"},
        "namespace": action.namespace, "operation": "CREATE", "userInfo": user, "dryRun": True,
        "object": {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                   "metadata": {"generateName": "safety-check-", "namespace": action.namespace,
                                "annotations": annotations, "labels": {}},
                   "spec": {"pipelineRef": {"name": "safety-check"}, "params": run_params}},
    })


def result_out(result: GateResult) -> schemas.SafetyCheckResult:
    answer = result.response.get("response", {})
    decision = result.decision
    if decision is None:
        return schemas.SafetyCheckResult(allowed=bool(answer.get("allowed", True)), code=None, message=None,
                                         warnings=list(answer.get("warnings") or []), gated=False, outcome=None,
                                         pattern=None, strategy=None, proposal=None, findings=[], recorded=False)
    event = decision.event
    target = event.target
    findings = [
        schemas.Finding(
            pattern=finding.pattern.value, severity=finding.severity.value, confidence=finding.confidence,
            summary=finding.summary, strategy=finding.policy.strategy.value, alternative=finding.alternative,
            counterpart=finding.counterpart,
            evidence=[schemas.Evidence(request_uid=e.uid, timestamp=e.at, action_type=e.action_type, actor=e.actor,
                                       summary=e.summary(), action_id=e.action_id) for e in finding.evidence],
        )
        for finding in decision.findings
    ]
    return schemas.SafetyCheckResult(
        allowed=decision.allowed, code=None if decision.allowed else decision.code,
        message=decision.message, warnings=list(answer.get("warnings") or []), gated=True,
        outcome=decision.outcome.value, pattern=decision.pattern or None,
        strategy=decision.strategy.value if decision.strategy else None,
        proposal=schemas.ProposedAction(
            target=schemas.Target(namespace=target.namespace, kind=target.kind, name=target.name) if target else None,
            action_type=event.action_type, actor=event.actor, actor_class=event.actor_class.value),
        findings=findings, recorded=False)
