"""Every pattern in one place: what detects it, what it needs loaded, what its restriction
refuses and how its alerts are named.

The decision layer, the engine and the alert writer ask a pattern's ``PatternSpec`` instead of
testing for particular patterns, so adding a pattern means: its ``PatternType`` value, its
default document (``webhook/policy/defaults.py``) and thresholds (``webhook/policy/validation.py``),
its detector module, one ``PatternSpec`` below, and the CRD enums, which a test checks against
:data:`REGISTRY`. The default documents and thresholds stay in the policy layer because policies
are loaded (and validated) below detection; a test checks that they cover exactly the registry.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping

from webhook.actions.model import ActionEvent
from webhook.detection import (
    cascading_failure,
    controller_fight,
    ineffective_loop,
    resource_thrashing,
    restart_storm,
    scale_oscillation,
    schedulability_oscillation,
)
from webhook.detection.situation import Finding, Situation
from webhook.policy.model import PatternType, Strategy
from webhook.policy.resolved import PatternPolicy

Detector = Callable[[Situation, PatternPolicy], Finding | None]


class Need(str, enum.Enum):
    """What the engine loads beyond the target's own history. ``ACTOR_HISTORY`` is read before
    detection (a pattern's detector counts it); the others only once a finding triggered."""

    ACTOR_HISTORY = "actor-history"   # the proposing actor's events on every target (budgets)
    APPROVALS = "approvals"           # approvals of the findings' alerts: an escalation may pass
    EFFECTIVENESS = "effectiveness"   # mean effectiveness per action type: the alternative to name
    HPA_NAME = "hpa-name"             # the HorizontalPodAutoscaler the message names


# What a strategy needs to be carried out, whichever pattern chose it. A cooling period may
# escalate (the third within escalateWindow), so it may need the approvals too.
_STRATEGY_NEEDS: Mapping[Strategy, frozenset[Need]] = {
    Strategy.ESCALATE_HUMAN: frozenset({Need.APPROVALS}),
    Strategy.COOLING_PERIOD: frozenset({Need.APPROVALS}),
    Strategy.ALTERNATIVE_ACTION: frozenset({Need.EFFECTIVENESS}),
    Strategy.BLOCK_ACTION: frozenset(),
}


class Scope(str, enum.Enum):
    """What a pattern's restriction (and its alert) is about."""

    TARGET = "target"   # one workload or node
    ACTOR = "actor"     # one automation actor within a namespace or the cluster


class Applies(str, enum.Enum):
    """Which later changes a restriction refuses while it is in force."""

    REPLICAS = "replicas"              # replica changes (and actions whose type says they scale)
    SCHEDULABILITY = "schedulability"  # cordon / uncordon of a node
    ALL = "all"                        # every gated action

    def covers(self, event: ActionEvent) -> bool:
        if self is Applies.ALL:
            return True
        if self is Applies.SCHEDULABILITY:
            return event.schedulability_direction != 0
        return changes_replicas(event)


def changes_replicas(event: ActionEvent) -> bool:
    """Whether a restriction on replica changes refuses this action.

    A replica change seen in the request, or an action whose type says it scales: a PipelineRun
    with ``ACTION_TYPE=scale_deployment`` changes replicas as surely as ``kubectl scale`` does,
    only later and out of the gate's sight, so a cooling period on its target refuses it too.
    """
    return event.is_scale or event.action_type.lower().startswith("scale")


@dataclasses.dataclass(frozen=True)
class PatternSpec:
    pattern: PatternType
    detect: Detector
    needs: frozenset[Need] = frozenset()
    scope: Scope = Scope.TARGET
    refuses: Applies = Applies.REPLICAS


REGISTRY: tuple[PatternSpec, ...] = (
    PatternSpec(pattern=PatternType.SCALE_OSCILLATION, detect=scale_oscillation.detect),
    PatternSpec(pattern=PatternType.RESOURCE_THRASHING, detect=resource_thrashing.detect),
    PatternSpec(pattern=PatternType.INEFFECTIVE_LOOP, detect=ineffective_loop.detect),
    PatternSpec(pattern=PatternType.CASCADING_FAILURE, detect=cascading_failure.detect,
                needs=frozenset({Need.ACTOR_HISTORY}), scope=Scope.ACTOR, refuses=Applies.ALL),
    PatternSpec(pattern=PatternType.CONTROLLER_FIGHT, detect=controller_fight.detect,
                needs=frozenset({Need.HPA_NAME})),
    PatternSpec(pattern=PatternType.RESTART_STORM, detect=restart_storm.detect),
    PatternSpec(pattern=PatternType.SCHEDULABILITY_OSCILLATION, detect=schedulability_oscillation.detect,
                refuses=Applies.SCHEDULABILITY),
)

SPECS: Mapping[PatternType, PatternSpec] = {spec.pattern: spec for spec in REGISTRY}


def spec_of(pattern: PatternType) -> PatternSpec:
    return SPECS[pattern]


def needed_before(patterns: Iterable[PatternType]) -> frozenset[Need]:
    """What detection itself needs for the patterns that have a policy on this target."""
    return frozenset(need for pattern in patterns if pattern in SPECS for need in SPECS[pattern].needs
                     if need is Need.ACTOR_HISTORY)


def needed_after(findings: Iterable[Finding]) -> frozenset[Need]:
    """What judging these triggered findings needs: their patterns' needs and their strategies'."""
    found: set[Need] = set()
    for finding in findings:
        found |= SPECS[finding.pattern].needs if finding.pattern in SPECS else frozenset()
        found |= _STRATEGY_NEEDS[finding.policy.strategy]
    found.discard(Need.ACTOR_HISTORY)
    return frozenset(found)
