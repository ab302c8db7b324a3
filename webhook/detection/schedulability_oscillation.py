"""schedulability-oscillation: a node cordoned and uncordoned back and forth (DESIGN §4), with
scale-oscillation's rules over ``drain_node`` changes instead of replica changes.

Over the node's cordon/uncordon changes in the window (every actor's) and the proposed one:
triggered with ≥ ``minOccurrences`` changes and ≥ ``directionChanges`` reversals, the proposed
change being one (with the defaults: cordon → uncordon → cordon, the third is refused). Severity:
CRITICAL at ≥ ``criticalReversals`` reversals, HIGH at ≥ ``highReversals``, else MEDIUM. Near
miss: one reversing change short. Confidence: reversals / (2 × ``directionChanges``).
"""

from __future__ import annotations

from webhook.detection import _counting, _history, _wording
from webhook.detection.situation import Finding, Severity, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

PATTERN = PatternType.SCHEDULABILITY_OSCILLATION


def detect(situation: Situation, policy: PatternPolicy) -> Finding | None:
    proposed = situation.proposed
    if not proposed.schedulability_direction:
        return None
    changes = [event for event in _history.target_events(situation, policy) if event.schedulability_direction]
    changes.append(proposed)
    directions = [event.schedulability_direction for event in changes]
    if not _counting.ends_in_reversal(directions):
        return None
    reversals = _counting.reversals(directions)
    needed = _counting.required(policy, "directionChanges", 2)
    triggered, near_miss = _counting.reversal_verdict(count=reversals, needed=needed, length=len(changes),
                                                      min_occurrences=policy.min_occurrences)
    if not (triggered or near_miss):
        return None
    if reversals >= _counting.required(policy, "criticalReversals", 4):
        severity = Severity.CRITICAL
    elif reversals >= _counting.required(policy, "highReversals", 3):
        severity = Severity.HIGH
    else:
        severity = Severity.MEDIUM
    chain = "→".join(event.summary() for event in changes)
    return Finding(
        pattern=PATTERN,
        policy=policy,
        triggered=triggered,
        severity=severity,
        confidence=_counting.confidence(reversals, needed),
        evidence=tuple(changes),
        summary=f"{_wording.plural(reversals, 'direction reversal')} in "
                f"{_wording.span(changes[0].at, situation.now)} ({chain})",
    )
