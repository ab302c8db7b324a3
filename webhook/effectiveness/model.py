"""What an effectiveness assessment looks like on the wire (the seed's ``effectivenessAssessment``).

Strict: a score is a JSON number in [0, 1], criteria are JSON booleans, unknown fields are
refused — an assessment that silently lost a misspelt field would teach the gate the wrong thing.
"""

from __future__ import annotations

import enum
from typing import Annotated

import pydantic


class Method(str, enum.Enum):
    AUTOMATED = "automated"
    MANUAL = "manual"
    ML_DERIVED = "ml-derived"


class Criteria(pydantic.BaseModel):
    """Which of the seed's five success criteria held after the action."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    alertResolved: bool
    targetMetricImproved: bool
    noNewAlertsGenerated: bool
    resourceStabilized: bool
    sideEffectsMinimal: bool


Score = Annotated[float, pydantic.Field(ge=0.0, le=1.0, allow_inf_nan=False,
                                        description="0.0 = failed, 1.0 = perfect")]


class Assessment(pydantic.BaseModel):
    """The body of ``POST /api/v1/actions/{id}/effectiveness``."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True,
                                       json_schema_extra={"example": {
                                           "score": 0.9, "method": "automated", "notes": "alert cleared in 4m",
                                           "criteria": {"alertResolved": True, "targetMetricImproved": True,
                                                        "noNewAlertsGenerated": True, "resourceStabilized": True,
                                                        "sideEffectsMinimal": True}}})

    score: Score
    criteria: Criteria
    method: Annotated[Method, pydantic.Field(strict=False)]  # strings name the enum, even in strict mode
    notes: Annotated[str, pydantic.Field(max_length=4096)] | None = None
