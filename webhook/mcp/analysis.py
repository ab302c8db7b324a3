"""Which oscillation patterns a target's recorded history contains.

The detectors answer "does *this proposed* action complete a pattern?". To ask it of history,
each recorded event is replayed as the proposed one, against the events recorded before it and
at its own time — exactly the question the gate asked when that event arrived. A pattern is
*present* when at least one recorded event completes it; the strongest such finding is reported
(same order as the gate: ``detection.detect.order``).

Two deliberate limits, stated in every tool answer that uses this:

* Only admitted actions are recorded, so a pattern the gate *prevented* — its completing action
  was denied — does not show here. The gate's own detections (``oscillation_detections``)
  cover that; the tools report both.
* Cooling-period resets are not applied: the scan shows what the raw history contains, not what
  the gate would still hold against the next action.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence

from webhook.actions.model import ActionEvent
from webhook.detection.detect import detect_all, order
from webhook.detection.situation import Finding, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy


@dataclasses.dataclass(frozen=True)
class Occurrence:
    """A pattern completed by a recorded event, and how often it was completed in the scan."""

    finding: Finding
    completed_by: ActionEvent
    times: int


def scan(events: Sequence[ActionEvent], *, policies: Mapping[PatternType, PatternPolicy],
         actor_events: Mapping[str, Sequence[ActionEvent]] | None = None,
         start: datetime.datetime | None = None) -> dict[PatternType, Occurrence]:
    """The strongest occurrence of each pattern completed by an event at or after ``start``.

    ``events`` is the target's history, oldest first, reaching back far enough before ``start``
    for the first scanned events to have their own window. ``actor_events`` holds each actor's
    events on any target (for cascading-failure budgets).
    """
    ordered = sorted(events, key=lambda e: e.at)
    found: dict[PatternType, Occurrence] = {}
    for index, event in enumerate(ordered):
        if start is not None and event.at < start:
            continue
        own = [e for e in (actor_events or {}).get(event.actor, ()) if e.at <= event.at and e.uid != event.uid]
        situation = Situation(proposed=event, now=event.at, history=tuple(ordered[:index]), actor_history=tuple(own))
        for finding in detect_all(situation, policies):
            if not finding.triggered:
                continue
            previous = found.get(finding.pattern)
            if previous is None:
                found[finding.pattern] = Occurrence(finding=finding, completed_by=event, times=1)
            elif order(finding) < order(previous.finding):  # stronger: it becomes the one reported
                found[finding.pattern] = Occurrence(finding=finding, completed_by=event, times=previous.times + 1)
            else:
                found[finding.pattern] = dataclasses.replace(previous, times=previous.times + 1)
    return found
