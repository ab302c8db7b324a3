"""restart-storm: one workload's pods restarted again and again (DESIGN §4, the ineffective loop
of ``restart_pod``).

A restart is a symptom cure: if the pods had to be restarted three times within the hour, a
fourth will not fix what the first three did not. So, unlike ``ineffective-loop``, an
unassessed restart counts as ineffective by itself; only a recorded effectiveness at or above
``effectivenessThreshold`` (0.3) ends the storm, and only restarts after it count.

Over the workload's ``restart_pod`` events in the window (every actor's): triggered when the
earlier restarts number ≥ ``minOccurrences`` − 1 (default 4: three earlier, the proposed one the
fourth). Severity HIGH, CRITICAL at twice that. Near miss: one fewer. Confidence: count /
(2 × required), capped at 1.
"""

from __future__ import annotations

from webhook.actions.model import ActionEvent
from webhook.detection import _counting, _history, _wording
from webhook.detection.situation import Finding, Severity, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

PATTERN = PatternType.RESTART_STORM
ACTION_TYPE = "restart_pod"


def detect(situation: Situation, policy: PatternPolicy) -> Finding | None:
    proposed = situation.proposed
    if proposed.action_type != ACTION_TYPE:
        return None
    threshold = policy.threshold("effectivenessThreshold", 0.3)
    counted: list[ActionEvent] = []
    for event in _history.target_events(situation, policy):
        if event.action_type != ACTION_TYPE:
            continue
        if event.effectiveness is not None and event.effectiveness >= threshold:
            counted.clear()
        else:
            counted.append(event)

    needed = max(1, policy.min_occurrences - 1)
    count = len(counted)
    triggered = count >= needed
    if not triggered and not (count >= 1 and count == needed - 1):
        return None
    text = (f"{count} earlier pod {'restart' if count == 1 else 'restarts'} in "
            f"{_wording.span(counted[0].at, situation.now)} without effect")
    return Finding(
        pattern=PATTERN,
        policy=policy,
        triggered=triggered,
        severity=Severity.CRITICAL if count >= 2 * needed else Severity.HIGH,
        confidence=_counting.confidence(count, needed),
        evidence=(*counted, proposed),
        summary=text,
    )
