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
from webhook.detection.situation import Finding, Situation
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

    return _counting.repetition_finding(
        pattern=PATTERN, policy=policy, counted=counted, proposed=proposed,
        summarise=lambda found: (f"{len(found)} earlier pod {'restart' if len(found) == 1 else 'restarts'} in "
                                 f"{_wording.span(found[0].at, situation.now)} without effect"))
