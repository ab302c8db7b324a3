"""The events a detector looks at, cut to the policy's window and put in time order.

``Situation`` promises the target's events oldest first, but detectors count reversals,
so an out-of-order or foreign event would silently change a verdict. These helpers make
that promise hold locally: sorted by time (stable, so equal times keep the caller's order),
the proposed event itself never counted twice, and events of other targets or other actors
left out even if a caller passed them.
"""

from __future__ import annotations

from webhook.actions.model import ActionEvent
from webhook.detection.situation import Situation
from webhook.policy.resolved import PatternPolicy


def target_events(situation: Situation, policy: PatternPolicy) -> list[ActionEvent]:
    """The proposed target's events in the window (all actors), oldest first, without the proposed."""
    proposed = situation.proposed
    key = proposed.target.key if proposed.target is not None else None
    events = [
        event for event in situation.window(policy)
        if event.uid != proposed.uid
        and (key is None or (event.target is not None and event.target.key == key))
    ]
    return sorted(events, key=lambda event: event.at)


def actor_events(situation: Situation, policy: PatternPolicy) -> list[ActionEvent]:
    """The proposing actor's own events in the window (any target), oldest first, without the proposed."""
    proposed = situation.proposed
    events = [
        event for event in situation.actor_window(policy)
        if event.uid != proposed.uid and event.actor == proposed.actor
    ]
    return sorted(events, key=lambda event: event.at)
