"""scale-oscillation: replicas pushed up and down on one target (DESIGN §4).

Rules, over the target's replica changes in the window (every actor's: an HPA moving replicas
back is part of the oscillation) followed by the proposed change:

* triggered when there are ≥ ``minOccurrences`` changes, ≥ ``directionChanges`` direction
  reversals, and the proposed change is itself a reversal. Requiring the last one to be a
  reversal means an actor continuing in the current direction is never stopped by this
  pattern: only turning back again is.
* severity: CRITICAL when the changes inside the last ``criticalWindowMinutes`` of ``now``
  contain ≥ ``criticalReversals`` reversals (a reversal counts there only if both changes
  forming it are inside that window); else HIGH at ≥ ``highReversals`` reversals; else MEDIUM.
* near miss: the proposed change is a reversal and one more reversing change would trigger
  (reversals ≥ ``directionChanges`` − 1 and changes ≥ ``minOccurrences`` − 1), but this one does not.
* confidence: reversals / (2 × ``directionChanges``), capped at 1 (0.5 exactly at the threshold).

Evidence is every replica change in the window plus the proposed one; the summary shows the
chain of replica counts, e.g. ``2 direction reversals in 41m (3→5→3→5)``.
"""

from __future__ import annotations

import datetime

from webhook.actions.model import ActionEvent
from webhook.detection import _counting, _history, _wording
from webhook.detection.situation import Finding, Severity, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

PATTERN = PatternType.SCALE_OSCILLATION


def detect(situation: Situation, policy: PatternPolicy) -> Finding | None:
    proposed = situation.proposed
    if not proposed.is_scale:
        return None
    changes = [event for event in _history.target_events(situation, policy) if event.is_scale]
    changes.append(proposed)
    directions = [event.replica_direction for event in changes]
    if not _counting.ends_in_reversal(directions):
        return None

    reversals = _counting.reversals(directions)
    needed = _counting.required(policy, "directionChanges", 2)
    occurrences = policy.min_occurrences
    triggered, near_miss = _counting.reversal_verdict(count=reversals, needed=needed, length=len(changes),
                                                      min_occurrences=occurrences)
    if not (triggered or near_miss):
        return None

    return Finding(
        pattern=PATTERN,
        policy=policy,
        triggered=triggered,
        severity=_severity(changes, reversals=reversals, now=situation.now, policy=policy),
        confidence=_counting.confidence(reversals, needed),
        evidence=tuple(changes),
        summary=summarise(changes, reversals=reversals, now=situation.now),
    )


def _severity(changes: list[ActionEvent], *, reversals: int, now: datetime.datetime, policy: PatternPolicy) -> Severity:
    recent_start = now - datetime.timedelta(minutes=policy.threshold("criticalWindowMinutes", 60))
    recent = [event.replica_direction for event in changes if event.at > recent_start]
    if _counting.reversals(recent) >= _counting.required(policy, "criticalReversals", 4):
        return Severity.CRITICAL
    if reversals >= _counting.required(policy, "highReversals", 3):
        return Severity.HIGH
    return Severity.MEDIUM


def summarise(changes: list[ActionEvent], *, reversals: int, now: datetime.datetime) -> str:
    """``2 direction reversals in 41m (3→5→3→5)``: the span runs from the first change to now."""
    chain = "→".join(str(count) for count in [changes[0].replicas_before, *(e.replicas_after for e in changes)])
    return f"{_wording.plural(reversals, 'direction reversal')} in {_wording.span(changes[0].at, now)} ({chain})"
