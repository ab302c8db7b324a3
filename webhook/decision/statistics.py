"""How well each OscillationPattern works: the seed's ``status.statistics`` and ``detectionHistory``.

Pure: the recorded decisions in, the status out. The store reads the records
(:mod:`webhook.store.pattern_records`), the Kubernetes edge writes the result
(:mod:`webhook.kube.pattern_status`).

Definitions (also in the user guide), all over the decisions of the last :data:`LOOKBACK`:

* A **detection** is a decision in which the pattern formed: the gate refused the change
  (``deny``), let it through under ``warn`` or ``dryrun`` enforcement, or let it through once
  on an approval. A refusal by a cooling period or block already in force is not a new
  detection: it is the prevention doing its work.
* A **refusal** is a detection that denied the change.
* A refusal is a **false positive** when, within the pattern's window after it, the same
  pattern on the same target was let through on a person's approval, or the target was changed
  under a break-glass bypass: someone decided the gate was wrong.
* A refusal is a **prevention success** when the pattern did not form again on that target
  within its window after it. A refusal whose window has not ended yet is not judged.

``falsePositiveRate`` is false positives / refusals; ``preventionSuccessRate`` is successes /
judged refusals. Either is left out while its denominator is zero: no evidence is not 0%.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from webhook.actions.model import TargetRef, rfc3339
from webhook.decision.decide import Outcome
from webhook.policy.model import PatternType, Strategy
from webhook.policy.resolved import PatternPolicy

LOOKBACK = datetime.timedelta(days=30)
HISTORY_LIMIT = 10  # entries of status.detectionHistory, newest first

DETECTED = frozenset({Outcome.DENY, Outcome.WARN, Outcome.DRYRUN_DENY, Outcome.APPROVED})


class HistoryOutcome(str, enum.Enum):
    """The seed's ``detectionHistory[].outcome``."""

    PREVENTED = "prevented"
    ALLOWED = "allowed"
    ESCALATED = "escalated"


class OverrideKind(str, enum.Enum):
    APPROVAL = "approval"
    BYPASS = "bypass"


@dataclasses.dataclass(frozen=True)
class Detection:
    """One decision in which a pattern formed on a target."""

    at: datetime.datetime
    pattern: PatternType
    target: TargetRef
    outcome: Outcome
    strategy: Strategy
    confidence: float | None = None
    action_count: int | None = None

    @property
    def refused(self) -> bool:
        return self.outcome is Outcome.DENY

    @property
    def history_outcome(self) -> HistoryOutcome:
        if not self.refused:
            return HistoryOutcome.ALLOWED
        return HistoryOutcome.ESCALATED if self.strategy is Strategy.ESCALATE_HUMAN else HistoryOutcome.PREVENTED


@dataclasses.dataclass(frozen=True)
class Override:
    """A person overruling the gate on a target: an approval used (of one pattern) or a bypass (of all)."""

    at: datetime.datetime
    target: TargetRef
    kind: OverrideKind
    pattern: PatternType | None = None

    def overrules(self, refusal: Detection, *, window: datetime.timedelta) -> bool:
        if self.target.key != refusal.target.key or not refusal.at < self.at <= refusal.at + window:
            return False
        return self.kind is OverrideKind.BYPASS or self.pattern is refusal.pattern


@dataclasses.dataclass(frozen=True)
class PatternStatistics:
    total_detections: int = 0
    refusals: int = 0
    false_positives: int = 0
    judged: int = 0          # refusals whose window has ended
    successes: int = 0
    last_detection: datetime.datetime | None = None

    @property
    def false_positive_rate(self) -> float | None:
        return self.false_positives / self.refusals if self.refusals else None

    @property
    def prevention_success_rate(self) -> float | None:
        return self.successes / self.judged if self.judged else None

    def to_status(self) -> dict[str, Any]:
        """``status.statistics`` in the CRD's shape (rates rounded: a status that changes in the
        sixth decimal would be rewritten for nothing)."""
        body: dict[str, Any] = {"totalDetections": self.total_detections}
        if self.prevention_success_rate is not None:
            body["preventionSuccessRate"] = round(self.prevention_success_rate, 4)
        if self.false_positive_rate is not None:
            body["falsePositiveRate"] = round(self.false_positive_rate, 4)
        if self.last_detection is not None:
            body["lastDetection"] = rfc3339(self.last_detection)
        return body


def statistics(detections: Sequence[Detection], overrides: Iterable[Override], *, window: datetime.timedelta,
               now: datetime.datetime) -> PatternStatistics:
    """The statistics of one policy's detections (all of one pattern), its window ``window``."""
    ordered = sorted(detections, key=lambda d: d.at)
    overruling = list(overrides)
    refusals = [d for d in ordered if d.refused]
    false_positives = sum(1 for r in refusals if any(o.overrules(r, window=window) for o in overruling))
    judged = [r for r in refusals if r.at + window <= now]
    successes = sum(1 for r in judged if not any(
        d.target.key == r.target.key and r.at < d.at <= r.at + window for d in ordered))
    return PatternStatistics(
        total_detections=len(ordered), refusals=len(refusals), false_positives=false_positives,
        judged=len(judged), successes=successes, last_detection=ordered[-1].at if ordered else None,
    )


def history_entry(detection: Detection) -> dict[str, Any]:
    """One ``status.detectionHistory`` item in the CRD's shape."""
    target = detection.target
    ref = {"kind": target.kind, "name": target.name}
    if target.namespace:
        ref["namespace"] = target.namespace
    entry: dict[str, Any] = {
        "detectedAt": rfc3339(detection.at), "resourceRef": ref,
        "preventionApplied": detection.refused, "outcome": detection.history_outcome.value,
    }
    if detection.confidence is not None:
        entry["confidence"] = round(min(1.0, max(0.0, detection.confidence)), 4)
    if detection.action_count is not None:
        entry["actionCount"] = detection.action_count
    return entry


def history(detections: Iterable[Detection], *, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """``status.detectionHistory``: the newest ``limit`` detections, newest first."""
    newest = sorted(detections, key=lambda d: d.at, reverse=True)[:limit]
    return [history_entry(d) for d in newest]


def status(detections: Sequence[Detection], overrides: Iterable[Override], *, window: datetime.timedelta,
           now: datetime.datetime, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    """``status.detectionHistory`` and ``status.statistics`` together, as the CRD has them."""
    return {
        "detectionHistory": history(detections, limit=limit),
        "statistics": statistics(detections, overrides, window=window, now=now).to_status(),
    }


def attribute(detections: Iterable[Detection], policies: Sequence[PatternPolicy]) -> dict[str, list[Detection]]:
    """Each detection to the policy that judged it: the first of its pattern whose scope covers the target.

    ``policies`` in precedence order (as :class:`~webhook.policy.resolved.PolicySet` applies them).
    The decision does not record the target's labels, so a label-scoped policy is taken to cover
    the targets of its kinds and namespaces. A detection no policy covers (the built-in default
    judged it) is nobody's here. Every policy name is a key, with an empty list if need be.
    """
    by_pattern: Mapping[PatternType, list[PatternPolicy]] = _group(policies)
    found: dict[str, list[Detection]] = {policy.name: [] for policy in policies}
    for detection in detections:
        for policy in by_pattern.get(detection.pattern, ()):
            if policy.applies_to(detection.target, labels=policy.scope.labels):
                found[policy.name].append(detection)
                break
    return found


def _group(policies: Sequence[PatternPolicy]) -> dict[PatternType, list[PatternPolicy]]:
    grouped: dict[PatternType, list[PatternPolicy]] = {}
    for policy in policies:
        grouped.setdefault(policy.pattern, []).append(policy)
    return grouped
