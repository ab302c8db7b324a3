"""Every value a detector or strategy reads from a policy, checked when the policy is loaded.

A policy that parses but holds a value the gate cannot use (``escalateWindow: "1 day"``,
``timeWindow: 999999d``, a typo in a threshold's name) used to load fine and then break every
review that reached it: the review failed open, or with ``failClosed`` every change was refused,
the HPA's included. So the whole policy is judged up front, in one pure pass, and a bad one is
refused as a whole with every problem named by its field path — ``serve --policy`` exits 2 and a
cluster object is left out of force with a status condition saying why.

The rules here are the single source of the ranges: the CRD's schema repeats them for the API
server (``charts/safety-gate/crds/oscillationpatterns.yaml``) and the user guide lists them.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
from collections.abc import Mapping

from webhook.policy.durations import DurationError, format_duration, parse_duration
from webhook.policy.model import OscillationPattern, PatternType

MAX_DURATION = datetime.timedelta(days=400)
MIN_DURATION = datetime.timedelta(seconds=1)
MAX_MIN_OCCURRENCES = 10_000
MAX_COUNT = 10_000
MAX_MINUTES = int(MAX_DURATION.total_seconds() // 60)


class ValueKind(enum.Enum):
    """How a threshold or parameter is read, which decides its range."""

    COUNT = "count"          # reversals, workloads, alternations: a number from 1 to MAX_COUNT
    MINUTES = "minutes"      # a span in minutes, more than 0 and at most MAX_DURATION
    FRACTION = "fraction"    # an effectiveness score, from 0 to 1
    DURATION = "duration"    # a parameter such as 30m, from MIN_DURATION to MAX_DURATION
    INTEGER = "integer"      # a whole-number parameter, from 1 to MAX_COUNT


# The thresholds each detector reads (webhook/detection/*); any other key is a mistake.
THRESHOLDS: Mapping[PatternType, Mapping[str, ValueKind]] = {
    PatternType.SCALE_OSCILLATION: {
        "directionChanges": ValueKind.COUNT, "highReversals": ValueKind.COUNT,
        "criticalReversals": ValueKind.COUNT, "criticalWindowMinutes": ValueKind.MINUTES,
    },
    PatternType.RESOURCE_THRASHING: {
        "directionChanges": ValueKind.COUNT, "alternations": ValueKind.COUNT,
        "highReversals": ValueKind.COUNT, "highAlternations": ValueKind.COUNT,
    },
    PatternType.INEFFECTIVE_LOOP: {"effectivenessThreshold": ValueKind.FRACTION},
    PatternType.CASCADING_FAILURE: {"namespaceWorkloads": ValueKind.COUNT, "clusterWorkloads": ValueKind.COUNT},
    PatternType.CONTROLLER_FIGHT: {"revertWindowMinutes": ValueKind.MINUTES},
    PatternType.RESTART_STORM: {"effectivenessThreshold": ValueKind.FRACTION},
    PatternType.SCHEDULABILITY_OSCILLATION: {
        "directionChanges": ValueKind.COUNT, "highReversals": ValueKind.COUNT, "criticalReversals": ValueKind.COUNT,
    },
}

# The parameters the strategies read (webhook/decision/decide.py, webhook/decision/state.py). They
# are checked whatever the strategy: a cooling period may escalate (approvalValidity), and each
# pattern's escalateWindow bounds the earlier cooling periods of that pattern that count.
PARAMETERS: Mapping[str, ValueKind] = {
    "cooldownPeriod": ValueKind.DURATION,
    "escalateAfter": ValueKind.INTEGER,
    "escalateWindow": ValueKind.DURATION,
    "blockDuration": ValueKind.DURATION,
    "approvalValidity": ValueKind.DURATION,
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One unusable value: where it is (a dotted path from the document's root) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class PolicyInvalid(ValueError):
    """A policy document with values the gate cannot use; ``problems`` names each one."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def check_duration(text: str) -> datetime.timedelta:
    """A policy duration within the bounds every window and period shares, or DurationError."""
    value = parse_duration(text)
    if not MIN_DURATION <= value <= MAX_DURATION:
        raise DurationError(f"{text.strip()!r} is out of range: a duration from 1s to {format_duration(MAX_DURATION)}")
    return value


def problems_of(doc: OscillationPattern) -> list[Problem]:
    """Everything wrong with a document the model accepted; empty when every value is usable."""
    criteria = doc.spec.patternDefinition.detectionCriteria
    pattern = doc.spec.patternDefinition.patternType
    base = "spec.patternDefinition.detectionCriteria"
    found: list[Problem] = []
    try:
        check_duration(criteria.timeWindow)
    except DurationError as exc:
        found.append(Problem(f"{base}.timeWindow", str(exc)))
    if criteria.minOccurrences > MAX_MIN_OCCURRENCES:
        found.append(Problem(f"{base}.minOccurrences", f"must be at most {MAX_MIN_OCCURRENCES}, "
                                                        f"got {criteria.minOccurrences}"))
    known = THRESHOLDS[pattern]
    for key, value in sorted(criteria.thresholds.items()):
        field = f"{base}.thresholds.{key}"
        if key not in known:
            found.append(Problem(field, f"{pattern.value} reads no such threshold; it reads {_listing(known)}"))
            continue
        problem = _number_problem(known[key], value)
        if problem:
            found.append(Problem(field, problem))
    for key, text in sorted(doc.spec.preventionStrategy.parameters.items()):
        field = f"spec.preventionStrategy.parameters.{key}"
        if key not in PARAMETERS:
            found.append(Problem(field, f"no strategy reads such a parameter; known: {_listing(PARAMETERS)}"))
            continue
        problem = _parameter_problem(PARAMETERS[key], text)
        if problem:
            found.append(Problem(field, problem))
    return found


def validate(doc: OscillationPattern) -> None:
    problems = problems_of(doc)
    if problems:
        raise PolicyInvalid(problems)


def _listing(names: Mapping[str, object]) -> str:
    return ", ".join(sorted(names)) or "none"


def _number_problem(kind: ValueKind, value: float) -> str | None:
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if kind is ValueKind.COUNT and not 1 <= value <= MAX_COUNT:
        return f"must be a count from 1 to {MAX_COUNT}, got {value:g}"
    if kind is ValueKind.MINUTES and not 0 < value <= MAX_MINUTES:
        return f"must be minutes, more than 0 and at most {MAX_MINUTES} (400d), got {value:g}"
    if kind is ValueKind.FRACTION and not 0 <= value <= 1:
        return f"must be an effectiveness score from 0 to 1, got {value:g}"
    return None


def _parameter_problem(kind: ValueKind, text: str) -> str | None:
    if kind is ValueKind.DURATION:
        try:
            check_duration(text)
        except DurationError as exc:
            return str(exc)
        return None
    stripped = text.strip()
    if not stripped.isdigit() or not stripped.isascii():
        return f"must be a whole number from 1 to {MAX_COUNT}, got {text!r}"
    if not 1 <= int(stripped) <= MAX_COUNT:
        return f"must be from 1 to {MAX_COUNT}, got {stripped}"
    return None
