"""Grouping scored actions into per-scope aggregates. Pure.

Four scopes, each broken down by action type (the seed's ``ActionEffectiveness`` keeps
``byActionType``, ``byAlertType``, ``byModel``; ``action_effectiveness_metrics`` stores them as
``scope_type`` ``action_type | namespace | alert | model``):

==========  =====================  ================================================
API scope   table ``scope_type``   ``scope_value``
==========  =====================  ================================================
global      action_type            ``global``
namespace   namespace              the target's namespace
alert       alert                  the alert name (actions without one are left out)
model       model                  the model used (actions without one are left out)
==========  =====================  ================================================
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
from collections.abc import Iterable, Sequence

from webhook.effectiveness.stats import Sample, Summary, summarise


class Scope(str, enum.Enum):
    GLOBAL = "global"
    NAMESPACE = "namespace"
    ALERT = "alert"
    MODEL = "model"

    @property
    def scope_type(self) -> str:
        return "action_type" if self is Scope.GLOBAL else self.value


GLOBAL_VALUE = "global"


@dataclasses.dataclass(frozen=True, slots=True)
class ScoredAction:
    at: datetime.datetime
    score: float
    action_type: str
    namespace: str | None = None
    alert_name: str | None = None
    model_used: str | None = None

    def scope_value(self, scope: Scope) -> str | None:
        if scope is Scope.GLOBAL:
            return GLOBAL_VALUE
        if scope is Scope.NAMESPACE:
            return self.namespace
        if scope is Scope.ALERT:
            return self.alert_name
        return self.model_used


@dataclasses.dataclass(frozen=True, slots=True)
class Aggregate:
    scope: Scope
    scope_value: str
    action_type: str
    summary: Summary


def aggregate(actions: Iterable[ScoredAction], *, scope: Scope, value: str | None = None,
              action_type: str | None = None) -> list[Aggregate]:
    """One aggregate per (scope value, action type), sorted by scope value then action type.

    ``value`` and ``action_type`` narrow the result to one scope value / one action type.
    """
    groups: dict[tuple[str, str], list[Sample]] = collections.defaultdict(list)
    for action in actions:
        scope_value = action.scope_value(scope)
        if not scope_value:
            continue
        if value is not None and scope_value != value:
            continue
        if action_type is not None and action.action_type != action_type:
            continue
        groups[(scope_value, action.action_type)].append(Sample(at=action.at, score=action.score))
    return [
        Aggregate(scope=scope, scope_value=key[0], action_type=key[1], summary=summarise(samples))
        for key, samples in sorted(groups.items())
    ]


def aggregate_all(actions: Sequence[ScoredAction]) -> list[Aggregate]:
    """Every scope at once: what the periodic refresh stores."""
    return [result for scope in Scope for result in aggregate(actions, scope=scope)]
