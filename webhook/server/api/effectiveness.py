"""Effectiveness routes: record an assessment (by action id or correlation id), and report aggregates.

``POST /api/v1/actions/{id}/effectiveness`` and ``.../by-correlation/{correlation_id}/effectiveness``
store the assessment and drop the target's cached history, so the very next decision on that
target sees the score. ``GET /api/v1/effectiveness`` computes aggregates fresh, stores them in
``action_effectiveness_metrics`` and publishes them as ``ai_action_effectiveness_score``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pydantic
from starlette.requests import Request
from starlette.responses import JSONResponse

from webhook import metrics
from webhook.effectiveness import aggregate as agg
from webhook.effectiveness.model import Assessment
from webhook.effectiveness.service import DEFAULT_PERIOD, EffectivenessService
from webhook.server.api import params, schemas
from webhook.server.api.body import read_object
from webhook.server.api.context import history_of, utcnow
from webhook.server.api.errors import ApiError, validation_failed
from webhook.store import effectiveness as repository

MAX_ID = params.MAX_ID


def service(request: Request) -> EffectivenessService:
    return EffectivenessService(history=history_of(request))


async def _assessment(request: Request) -> Assessment:
    raw, _ = await read_object(request)
    try:
        return Assessment.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise validation_failed(exc) from None


def assessed_out(action: repository.AssessedAction) -> schemas.AssessedAction:
    target = action.target
    return schemas.AssessedAction(
        id=action.id, request_uid=action.request_uid, correlation_id=action.correlation_id, timestamp=action.at,
        action_type=action.action_type,
        target=schemas.Target(namespace=target.namespace, kind=target.kind, name=target.name) if target else None,
        effectiveness=schemas.Effectiveness(score=action.score, criteria=action.criteria, method=action.method,
                                            assessed_at=action.assessed_at, notes=action.notes),
    )


async def assess(request: Request) -> JSONResponse:
    action_id = request.path_params["id"]
    assessment = await _assessment(request)
    if not 1 <= action_id <= MAX_ID:
        raise ApiError(404, f"no action with id {action_id}")
    assessed = await service(request).assess(action_id, assessment, now=utcnow())
    if assessed is None:
        raise ApiError(404, f"no action with id {action_id}; ids are those of GET /api/v1/history")
    return JSONResponse(schemas.dump(assessed_out(assessed)))


async def assess_correlation(request: Request) -> JSONResponse:
    correlation_id = params.text(request.path_params, "correlation_id", max_length=512) or ""
    assessment = await _assessment(request)
    assessed = await service(request).assess_correlation(correlation_id, assessment, now=utcnow())
    if not assessed:
        raise ApiError(404, f"no action with correlation id {correlation_id!r}")
    body = schemas.AssessedCorrelation(correlation_id=correlation_id, actions=[assessed_out(a) for a in assessed])
    return JSONResponse(schemas.dump(body))


async def report(request: Request) -> JSONResponse:
    query = request.query_params
    scope_text = query.get("scope", agg.Scope.GLOBAL.value)
    try:
        scope = agg.Scope(scope_text)
    except ValueError:
        raise ApiError(400, f"scope must be one of global, namespace, alert, model; got {scope_text!r}",
                       details=[{"loc": "scope", "msg": "unknown scope"}]) from None
    value = params.text(query, "value")
    action_type = params.text(query, "action_type", max_length=128)
    period_text = query.get("period")
    period = DEFAULT_PERIOD if period_text is None else params.duration(period_text, name="period")
    period_text = period_text or "30d"
    now = utcnow()
    results = await service(request).report(scope=scope, value=value, action_type=action_type, period=period,
                                            now=now)
    publish(results)
    body = schemas.EffectivenessReport(
        scope=scope.value, value=value, action_type=action_type, period=period_text, period_start=now - period,
        period_end=now, aggregates=[aggregate_out(result) for result in results])
    return JSONResponse(schemas.dump(body))


def aggregate_out(result: agg.Aggregate) -> schemas.Aggregate:
    summary = result.summary
    return schemas.Aggregate(
        scope=result.scope.value, scope_value=result.scope_value, action_type=result.action_type,
        sample_size=summary.sample_size, mean_score=summary.mean,
        confidence_interval=schemas.ConfidenceInterval(level=0.95, lower=summary.ci_lower, upper=summary.ci_upper),
        trend=summary.trend.value)


def gauge_labels(result: agg.Aggregate) -> dict[str, str]:
    """``scope`` is ``global``, ``namespace/<ns>``, ``alert/<name>`` or ``model``; ``model_used`` is the
    model for the model scope and ``all`` otherwise."""
    if result.scope is agg.Scope.GLOBAL:
        return {"action_type": result.action_type, "scope": "global", "model_used": "all"}
    if result.scope is agg.Scope.MODEL:
        return {"action_type": result.action_type, "scope": "model", "model_used": result.scope_value}
    return {"action_type": result.action_type, "scope": f"{result.scope.value}/{result.scope_value}",
            "model_used": "all"}


def publish(results: Iterable[agg.Aggregate]) -> None:
    for result in results:
        metrics.EFFECTIVENESS.labels(**gauge_labels(result)).set(result.summary.mean)
