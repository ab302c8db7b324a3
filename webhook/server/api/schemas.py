"""Request and response bodies of the API as pydantic models. Handlers build responses through
these models and the OpenAPI document is generated from them, so the two cannot drift apart."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import pydantic

# PostgreSQL text cannot hold NUL, and names follow Kubernetes' rules: refusing other input here
# turns what would be a store error into a 422 naming the field.
Namespace = Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
Name = Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
Kind = Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
Word = Annotated[str, pydantic.Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")]
Text = Annotated[str, pydantic.Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Out(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class ErrorDetail(_Out):
    loc: str | None = pydantic.Field(description="Where: a body field path, or a query parameter")
    msg: str


class Error(_Out):
    """Every error the API returns."""

    error: str = pydantic.Field(description="What is wrong, in one line a person understands")
    details: list[ErrorDetail] | None = None


class Target(_Out):
    namespace: str
    kind: str
    name: str


class Effectiveness(_Out):
    score: float = pydantic.Field(ge=0, le=1)
    criteria: dict[str, bool] = pydantic.Field(description="The seed's five criteria as recorded")
    method: Literal["automated", "manual", "ml-derived"]
    assessed_at: datetime.datetime
    notes: str | None = None


class HistoryItem(_Out):
    id: int = pydantic.Field(description="The action's id: use it to record an assessment")
    request_uid: str
    timestamp: datetime.datetime
    target: Target | None
    action_type: str
    actor: str
    actor_class: str
    object_kind: str
    summary: str = pydantic.Field(description="e.g. 'replicas 3→5'")
    alert_name: str | None
    correlation_id: str | None
    model_used: str | None
    model_confidence: float | None
    replicas_before: int | None
    replicas_after: int | None
    bypass_reason: str | None
    is_pattern_example: bool
    effectiveness: Effectiveness | None
    status: str = pydantic.Field(description=(
        "proposed (admitted, not yet seen in the cluster), confirmed (seen), not-applied (never landed:"
        " counts toward no pattern), or recorded (no cluster to confirm against: counts)"))


class HistoryPage(_Out):
    items: list[HistoryItem] = pydantic.Field(description="Newest first")
    next_cursor: str | None = pydantic.Field(description="Pass as ?cursor= for the next page; null on the last")


class AssessedAction(_Out):
    id: int
    request_uid: str
    correlation_id: str | None
    timestamp: datetime.datetime
    action_type: str
    target: Target | None
    effectiveness: Effectiveness


class AssessedCorrelation(_Out):
    correlation_id: str
    actions: list[AssessedAction]


class ConfidenceInterval(_Out):
    level: float = pydantic.Field(description="0.95: Student's t interval, clamped to [0, 1]")
    lower: float
    upper: float


class Aggregate(_Out):
    scope: Literal["global", "namespace", "alert", "model"]
    scope_value: str = pydantic.Field(description="'global', or the namespace, alert name or model")
    action_type: str
    sample_size: int
    mean_score: float
    confidence_interval: ConfidenceInterval
    trend: Literal["improving", "stable", "declining"] = pydantic.Field(
        description="Newer half's mean vs older half's: ±0.1 or more; 'stable' under 4 samples")


class EffectivenessReport(_Out):
    scope: Literal["global", "namespace", "alert", "model"]
    value: str | None
    action_type: str | None
    period: str
    period_start: datetime.datetime
    period_end: datetime.datetime
    aggregates: list[Aggregate]


class SafetyCheckAction(pydantic.BaseModel):
    """A proposed action in plain terms. With ``replicas_before`` and ``replicas_after`` on a
    Deployment or StatefulSet it is judged as a ``scale`` subresource update (the action type is
    then derived: ``scale_deployment``/``scale_statefulset``); otherwise as a Tekton PipelineRun
    carrying ``action_type`` against the target, as Kubernaut creates them."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "dependentRequired": {"replicas_before": ["replicas_after"], "replicas_after": ["replicas_before"]}})

    namespace: Namespace
    kind: Kind
    name: Name
    action_type: Word
    actor: Annotated[Text, pydantic.Field(description="The Kubernetes username that would act")]
    groups: list[Text] | None = pydantic.Field(
        default=None, max_length=64, description="Default: service-account groups for a service account")
    replicas_before: Annotated[int, pydantic.Field(ge=0, le=1_000_000)] | None = None
    replicas_after: Annotated[int, pydantic.Field(ge=0, le=1_000_000)] | None = None
    alert_name: Text | None = None
    correlation_id: Text | None = None
    model_used: Text | None = None
    confidence: Annotated[float, pydantic.Field(ge=0, le=1, allow_inf_nan=False)] | None = None

    @pydantic.model_validator(mode="after")
    def _both_replicas_or_neither(self) -> SafetyCheckAction:
        if (self.replicas_before is None) != (self.replicas_after is None):
            raise ValueError("give both replicas_before and replicas_after, or neither")
        return self


class Evidence(_Out):
    request_uid: str
    timestamp: datetime.datetime
    action_type: str
    actor: str
    summary: str
    action_id: int | None


class Finding(_Out):
    pattern: str
    severity: Literal["low", "medium", "high", "critical"]
    confidence: float
    summary: str
    strategy: str
    evidence: list[Evidence]
    alternative: str | None = None
    counterpart: str | None = None


class ProposedAction(_Out):
    target: Target | None
    action_type: str
    actor: str
    actor_class: str


class SafetyCheckResult(_Out):
    allowed: bool
    code: int | None = pydantic.Field(description="The status code a denial carries (403, 429); null if allowed")
    message: str | None
    warnings: list[str]
    gated: bool = pydantic.Field(description="False when the gate does not judge this request at all")
    outcome: str | None = pydantic.Field(description="allow, deny, warn, dryrun-deny, bypass, approved")
    pattern: str | None
    strategy: str | None
    proposal: ProposedAction | None
    findings: list[Finding] = pydantic.Field(description="Triggered patterns, strongest first")
    recorded: Literal[False] = pydantic.Field(description="Always false: a safety check records nothing")


def dump(model: pydantic.BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
