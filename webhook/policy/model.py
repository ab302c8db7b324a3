"""The OscillationPattern document (the seed's schema plus ``spec.enforcementAction``).

The same model reads a policy file and the cluster's OscillationPattern objects, so the two
can never disagree about what a field means.
"""

from __future__ import annotations

import enum
from typing import Any

import pydantic

from webhook.policy.durations import parse_duration

API_GROUP = "ai.prometheus-alerts-slm.io"
API_VERSION = f"{API_GROUP}/v1"


class PatternType(str, enum.Enum):
    SCALE_OSCILLATION = "scale-oscillation"
    RESOURCE_THRASHING = "resource-thrashing"
    INEFFECTIVE_LOOP = "ineffective-loop"
    CASCADING_FAILURE = "cascading-failure"
    CONTROLLER_FIGHT = "controller-fight"
    RESTART_STORM = "restart-storm"
    SCHEDULABILITY_OSCILLATION = "schedulability-oscillation"


class Strategy(str, enum.Enum):
    COOLING_PERIOD = "cooling-period"
    ALTERNATIVE_ACTION = "alternative-action"
    BLOCK_ACTION = "block-action"
    ESCALATE_HUMAN = "escalate-human"

    @property
    def strength(self) -> int:
        """DESIGN §4: escalate-human > block-action > alternative-action > cooling-period."""
        return _STRENGTH[self]


_STRENGTH = {
    Strategy.COOLING_PERIOD: 1,
    Strategy.ALTERNATIVE_ACTION: 2,
    Strategy.BLOCK_ACTION: 3,
    Strategy.ESCALATE_HUMAN: 4,
}


class Enforcement(str, enum.Enum):
    ENFORCE = "enforce"
    WARN = "warn"
    DRYRUN = "dryrun"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True)


class DetectionCriteria(_Model):
    minOccurrences: int = pydantic.Field(ge=2)
    timeWindow: str
    actionSequence: list[str] = []
    thresholds: dict[str, float] = {}

    @pydantic.field_validator("timeWindow")
    @classmethod
    def _window_is_a_duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class PatternDefinition(_Model):
    patternType: PatternType
    description: str = ""
    detectionCriteria: DetectionCriteria


class ResourceScope(_Model):
    resourceTypes: list[str] = []
    namespaces: list[str] = []
    labels: dict[str, str] = {}


class Alerting(_Model):
    enabled: bool = True
    severity: str | None = pydantic.Field(default=None, pattern="^(info|warning|critical)$")
    channels: list[str] = []


class PreventionStrategy(_Model):
    strategy: Strategy
    parameters: dict[str, str] = {}
    alerting: Alerting = Alerting()

    @pydantic.field_validator("parameters", mode="before")
    @classmethod
    def _parameters_are_strings(cls, value: Any) -> Any:
        # YAML turns `escalateAfter: 3` into an int; the schema says strings, so accept and convert.
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value


class PatternSpec(_Model):
    patternDefinition: PatternDefinition
    resourceScope: ResourceScope = ResourceScope()
    preventionStrategy: PreventionStrategy
    enforcementAction: Enforcement = Enforcement.ENFORCE


class ObjectMeta(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    name: str
    resourceVersion: str | None = None
    generation: int | None = None


class OscillationPattern(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    apiVersion: str = API_VERSION
    kind: str = "OscillationPattern"
    metadata: ObjectMeta
    spec: PatternSpec

    @pydantic.field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value != "OscillationPattern":
            raise ValueError(f"kind must be OscillationPattern, not {value!r}")
        return value
