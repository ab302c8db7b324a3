"""Policies as the detectors use them: typed, with durations parsed and scope matching built in."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import fnmatch
from collections.abc import Iterable, Mapping

from webhook.actions.model import TargetRef
from webhook.policy import validation
from webhook.policy.durations import parse_duration
from webhook.policy.model import Enforcement, OscillationPattern, PatternType, ResourceScope, Strategy
from webhook.policy.target_settings import AnalysisConfig


class PolicySource(str, enum.Enum):
    """Where a policy came from, in precedence order (:class:`PolicySet`)."""

    CLUSTER = "cluster"   # an OscillationPattern object
    FILE = "file"         # the ``--policy`` file
    DEFAULT = "default"   # the built-in defaults


class Basis(str, enum.Enum):
    """Whose history a pattern is judged on, which decides who may tune it."""

    TARGET = "target"  # one target's: the target's ``analysisConfig`` tunes it for that target
    ACTOR = "actor"    # an actor's changes on many targets: a budget no one target's owners may loosen


#: Each pattern's basis. Detection's registry says the same from its side (an actor-scoped
#: pattern needs the actor's history); ``tests/unit/detection/test_registry.py`` checks they agree.
BASIS: Mapping[PatternType, Basis] = {
    PatternType.SCALE_OSCILLATION: Basis.TARGET,
    PatternType.RESOURCE_THRASHING: Basis.TARGET,
    PatternType.INEFFECTIVE_LOOP: Basis.TARGET,
    PatternType.CASCADING_FAILURE: Basis.ACTOR,
    PatternType.CONTROLLER_FIGHT: Basis.TARGET,
    PatternType.RESTART_STORM: Basis.TARGET,
    PatternType.SCHEDULABILITY_OSCILLATION: Basis.TARGET,
}

#: The threshold ``analysisConfig.effectivenessThreshold`` sets, for the patterns that read it
#: (``validation.THRESHOLDS``): ineffective-loop and restart-storm.
EFFECTIVENESS_THRESHOLD = "effectivenessThreshold"


@dataclasses.dataclass(frozen=True)
class PatternPolicy:
    """One pattern's detection criteria and prevention strategy, ready to apply."""

    name: str
    source: PolicySource
    pattern: PatternType
    min_occurrences: int
    window: datetime.timedelta
    thresholds: Mapping[str, float]
    strategy: Strategy
    parameters: Mapping[str, str]
    enforcement: Enforcement = Enforcement.ENFORCE
    scope: ResourceScope = dataclasses.field(default_factory=ResourceScope)
    action_sequence: tuple[str, ...] = ()

    def threshold(self, name: str, default: float) -> float:
        return float(self.thresholds.get(name, default))

    def duration(self, name: str, default: str) -> datetime.timedelta:
        return parse_duration(self.parameters.get(name, default))

    def integer(self, name: str, default: int) -> int:
        try:
            return int(self.parameters.get(name, default))
        except ValueError:
            return default

    @property
    def needs_labels(self) -> bool:
        return bool(self.scope.labels)

    def applies_to(self, target: TargetRef, *, labels: Mapping[str, str] | None) -> bool:
        scope = self.scope
        if scope.resourceTypes and not _kind_listed(target.kind, scope.resourceTypes):
            return False
        if scope.namespaces and not any(fnmatch.fnmatchcase(target.namespace, ns) for ns in scope.namespaces):
            return False
        if scope.labels:
            if labels is None:
                return False
            if any(labels.get(key) != value for key, value in scope.labels.items()):
                return False
        return True

    def tuned(self, analysis: AnalysisConfig) -> PatternPolicy:
        """This policy with a target's ``analysisConfig`` over it: its window, minimum occurrences
        and, for the patterns that read one, effectiveness threshold. Only patterns judged on the
        target's own history are tuned (:data:`BASIS`)."""
        if BASIS[self.pattern] is not Basis.TARGET or analysis.empty:
            return self
        thresholds = dict(self.thresholds)
        if (analysis.effectiveness_threshold is not None
                and EFFECTIVENESS_THRESHOLD in validation.THRESHOLDS[self.pattern]):
            thresholds[EFFECTIVENESS_THRESHOLD] = analysis.effectiveness_threshold
        return dataclasses.replace(
            self, window=analysis.window or self.window, thresholds=thresholds,
            min_occurrences=analysis.min_occurrences or self.min_occurrences)

    @classmethod
    def from_document(cls, doc: OscillationPattern, *, source: PolicySource) -> PatternPolicy:
        """The policy of a document whose every value is usable (else ``PolicyInvalid``)."""
        validation.validate(doc)
        spec = doc.spec
        criteria = spec.patternDefinition.detectionCriteria
        return cls(
            name=doc.metadata.name,
            source=source,
            pattern=spec.patternDefinition.patternType,
            min_occurrences=criteria.minOccurrences,
            window=parse_duration(criteria.timeWindow),
            thresholds=dict(criteria.thresholds),
            strategy=spec.preventionStrategy.strategy,
            parameters=dict(spec.preventionStrategy.parameters),
            enforcement=spec.enforcementAction,
            scope=spec.resourceScope,
            action_sequence=tuple(criteria.actionSequence),
        )


def _kind_listed(kind: str, listed: Iterable[str]) -> bool:
    lowered = kind.lower()
    return any(item.lower() in (lowered, lowered + "s") for item in listed)


@dataclasses.dataclass(frozen=True)
class PolicySet:
    """Policies in precedence order: cluster objects, then the policy file, then built-in defaults.

    For each pattern the first policy whose scope matches the target applies; later ones for the
    same pattern are ignored for that target. A pattern no policy matches is not checked.

    ``targets`` holds the per-target ``analysisConfig`` (by target key) people set on the
    target's ActionHistorySummary; it tunes the chosen policies for that target only.
    """

    policies: tuple[PatternPolicy, ...]
    targets: Mapping[str, AnalysisConfig] = dataclasses.field(default_factory=dict)

    def for_target(self, target: TargetRef, *, labels: Mapping[str, str] | None) -> dict[PatternType, PatternPolicy]:
        chosen: dict[PatternType, PatternPolicy] = {}
        for policy in self.policies:
            if policy.pattern not in chosen and policy.applies_to(target, labels=labels):
                chosen[policy.pattern] = policy
        analysis = self.targets.get(target.key)
        if analysis is not None:
            chosen = {pattern: policy.tuned(analysis) for pattern, policy in chosen.items()}
        return chosen

    def needs_labels(self, target: TargetRef) -> bool:
        """Whether a label-scoped policy could apply to this target (worth reading its labels)."""
        return any(p.needs_labels and p.applies_to(target, labels=p.scope.labels) for p in self.policies)

    @property
    def longest_window(self) -> datetime.timedelta:
        return max((p.window for p in self.policies), default=datetime.timedelta(hours=3))

    @classmethod
    def layered(cls, *layers: Iterable[PatternPolicy],
                targets: Mapping[str, AnalysisConfig] | None = None) -> PolicySet:
        return cls(tuple(policy for layer in layers for policy in layer), targets=dict(targets or {}))
