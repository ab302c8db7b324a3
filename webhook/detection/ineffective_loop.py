"""ineffective-loop: the same action repeated on one target without effect (DESIGN §4).

Over the target's events in the window (every actor's), the *earlier* actions are those of the
proposed action's type, and, when the proposal names a remediation (Kubernaut's workflow id),
those of the same remediation whatever their type. Each earlier action is

* **effective** when its recorded effectiveness is ≥ ``effectivenessThreshold`` (0.3). It ended
  the loop: only actions after the last effective one count.
* **ineffective** when its recorded effectiveness is below the threshold, or when it is
  unassessed and a later event on the target (any type, any actor, the proposed one included)
  carries the same non-empty alert name: the alert it answered came back. For a remediation
  (Kubernaut's loops carry no alert name unless its RemediationRequest could be read), also
  when it is unassessed and a later remediation on the target runs the same workflow or the
  same action type: the agent tried again because the first run did not fix it.
* otherwise **undecided** (unassessed, and nothing came back after it): it neither counts nor
  resets, because nothing shows it failed or worked.

Triggered when the ineffective actions after the last effective one number ≥
``minOccurrences`` − 1: with the default 4, the proposed action would be the 4th in a row.
Severity HIGH, CRITICAL at twice that. Near miss: one fewer (and at least one).
Confidence: count / (2 × required), capped at 1.

Summary: ``3 earlier increase_resources actions in 2h10m without effect (alert
KubePodOOMKilled; scores 0.1, 0.2, unassessed)``; scores are listed only when at least one of
the counted actions was assessed.
"""

from __future__ import annotations

from collections.abc import Sequence

from webhook.actions.model import ActionEvent
from webhook.detection import _counting, _history, _wording
from webhook.detection.situation import Finding, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

PATTERN = PatternType.INEFFECTIVE_LOOP


def detect(situation: Situation, policy: PatternPolicy) -> Finding | None:
    proposed = situation.proposed
    threshold = policy.threshold("effectivenessThreshold", 0.3)
    events = [*_history.target_events(situation, policy), proposed]

    counted: list[ActionEvent] = []
    for index, event in enumerate(events[:-1]):
        if not _same_loop(event, proposed):
            continue
        if event.effectiveness is not None and event.effectiveness >= threshold:
            counted.clear()
        elif _ineffective(event, later=events[index + 1:], threshold=threshold):
            counted.append(event)

    return _counting.repetition_finding(
        pattern=PATTERN, policy=policy, counted=counted, proposed=proposed,
        summarise=lambda found: summarise(found, proposed=proposed, situation=situation))


def _same_loop(event: ActionEvent, proposed: ActionEvent) -> bool:
    return event.action_type == proposed.action_type or (
        proposed.remediation is not None and event.remediation == proposed.remediation)


def _ineffective(event: ActionEvent, *, later: list[ActionEvent], threshold: float) -> bool:
    if event.effectiveness is not None:
        return event.effectiveness < threshold
    if event.alert_name and any(other.alert_name == event.alert_name for other in later):
        return True
    return event.remediation is not None and any(
        other.remediation is not None
        and (other.remediation == event.remediation or other.action_type == event.action_type)
        for other in later)


def summarise(counted: Sequence[ActionEvent], *, proposed: ActionEvent, situation: Situation) -> str:
    alerts = list(dict.fromkeys(event.alert_name for event in counted if event.alert_name))
    workflows = list(dict.fromkeys(event.remediation for event in counted
                                   if event.remediation and event.remediation != event.action_type))
    details = []
    if alerts:
        details.append(f"{'alert' if len(alerts) == 1 else 'alerts'} {', '.join(alerts)}")
    if workflows:
        details.append(f"{'workflow' if len(workflows) == 1 else 'workflows'} {', '.join(workflows)}")
    if any(event.effectiveness is not None for event in counted):
        scores = [
            "unassessed" if event.effectiveness is None else _wording.number(event.effectiveness)
            for event in counted
        ]
        details.append(f"scores {', '.join(scores)}")
    text = (
        f"{len(counted)} earlier {proposed.action_type} {'action' if len(counted) == 1 else 'actions'} "
        f"in {_wording.span(counted[0].at, situation.now)} without effect"
    )
    return f"{text} ({'; '.join(details)})" if details else text
