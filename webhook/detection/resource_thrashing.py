"""resource-thrashing: a workload's resources pushed back and forth (DESIGN §4).

Two triggers; either suffices, both are evaluated over the target's events in the window
(every actor's) followed by the proposed event:

(a) **one dimension reversing.** A dimension is one container's cpu or memory request or limit
    (``ResourceChange.dimension``). For each dimension the proposed event moves, the sequence is
    the events that move that dimension (nonzero direction), then the proposed one. Triggered
    when it holds ≥ ``directionChanges`` reversals, ≥ ``minOccurrences`` events, and the proposed
    move is itself a reversal. When several dimensions qualify (a request and its limit often
    move together), the one with the most reversals is reported (ties: dimension name).
(b) **scale and resources alternating.** Each event is classed ``resource`` (it moves a
    resource; also when it scales too) or ``scale`` (it only changes replicas); other events
    are skipped. Triggered when the classes alternate ≥ ``alternations`` times, the sequence
    holds ≥ ``minOccurrences`` events, and the proposed event's class differs from the one
    before: an agent that cannot decide whether a problem is capacity or sizing.

``minOccurrences`` is honoured on both triggers (with the defaults it never binds: two
reversals already need three events). Severity is HIGH when the reported dimension has
≥ ``highReversals`` (3) reversals or the alternations reach ``highAlternations`` (4), else
MEDIUM. Near miss: the proposed event is a reversal/alternation and one more such event would
trigger. Confidence: observed / (2 × required), the larger of the two triggers, capped at 1.

``alternative`` names what to do instead: the action type with the best mean recorded
effectiveness on this target other than the proposed one (ties: alphabetical), or None when
nothing else was ever assessed, in which case the decision layer says "escalate to a person".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from webhook.actions.model import ActionEvent, ResourceChange
from webhook.detection import _counting, _history, _wording
from webhook.detection.situation import Finding, Severity, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

PATTERN = PatternType.RESOURCE_THRASHING


@dataclasses.dataclass(frozen=True)
class _Trigger:
    """One trigger evaluated: how far it got, and the events and words that show it."""

    kind: str                 # "dimension" | "alternation"
    key: str                  # the dimension, or "alternation"
    count: int
    needed: int
    triggered: bool
    near_miss: bool
    evidence: tuple[ActionEvent, ...]
    summary: str


def detect(situation: Situation, policy: PatternPolicy) -> Finding | None:
    proposed = situation.proposed
    if not (proposed.is_scale or proposed.is_resource_change):
        return None
    events = _history.target_events(situation, policy)
    dimensions = sorted(
        _dimension_triggers(events, proposed, situation=situation, policy=policy),
        key=lambda t: (-t.count, t.key),
    )
    alternation = _alternation_trigger(events, proposed, situation=situation, policy=policy)
    triggers = [*dimensions, *([alternation] if alternation else [])]

    chosen = _pick(triggers, triggered=True) or _pick(triggers, triggered=False)
    if not chosen:
        return None
    triggered = chosen[0].triggered

    return Finding(
        pattern=PATTERN,
        policy=policy,
        triggered=triggered,
        severity=_severity(chosen, policy),
        confidence=max(_counting.confidence(t.count, t.needed) for t in chosen),
        evidence=_merge(events, proposed, chosen),
        summary="; ".join(t.summary for t in chosen),
        alternative=best_alternative(situation.target_effectiveness, exclude=proposed.action_type),
    )


def best_alternative(effectiveness: Mapping[str, float], *, exclude: str) -> str | None:
    """The action type with the best mean effectiveness other than ``exclude`` (ties: alphabetical)."""
    candidates = [
        (-score, action) for action, score in effectiveness.items()
        if action != exclude and score is not None and not math.isnan(score)
    ]
    return min(candidates)[1] if candidates else None


def _pick(triggers: list[_Trigger], *, triggered: bool) -> list[_Trigger]:
    """The triggered (or else near-miss) triggers to report: the strongest dimension (they come
    sorted, most reversals first) and the alternation trigger, each only if it qualifies."""
    qualifying = [t for t in triggers if (t.triggered if triggered else t.near_miss)]
    dimension = [t for t in qualifying if t.kind == "dimension"][:1]
    return dimension + [t for t in qualifying if t.kind == "alternation"]


def _dimension_triggers(
    events: list[ActionEvent], proposed: ActionEvent, *, situation: Situation, policy: PatternPolicy,
) -> list[_Trigger]:
    """One trigger per dimension the proposed event moves, from one pass over every change.

    Linear in the number of changes in the window: a template with thousands of containers moves
    thousands of dimensions, and looking each one up in every event was quadratic (seconds, on the
    event loop)."""
    needed = _counting.required(policy, "directionChanges", 2)
    proposed_moves = _moves(proposed)
    sequences: dict[str, list[tuple[ActionEvent, ResourceChange]]] = {dimension: [] for dimension in proposed_moves}
    for event in events:
        for dimension, change in _moves(event).items():
            pending = sequences.get(dimension)
            if pending is not None:
                pending.append((event, change))
    triggers = []
    for dimension, proposed_change in proposed_moves.items():
        pairs = [*sequences[dimension], (proposed, proposed_change)]
        changes = [change for _, change in pairs]
        directions = [change.direction for change in changes]
        if not _counting.ends_in_reversal(directions):
            continue
        sequence = [event for event, _ in pairs]
        count = _counting.reversals(directions)
        triggered, near_miss = _counting.reversal_verdict(count=count, needed=needed, length=len(sequence),
                                                          min_occurrences=policy.min_occurrences)
        first = changes[0]
        chain = "→".join([_quantity(first.before, first.before_text), *(_quantity(c.after, c.after_text) for c in changes)])
        label = f"{first.container} {first.resource} {first.field.removesuffix('s')}"
        triggers.append(_Trigger(
            kind="dimension",
            key=dimension,
            count=count,
            needed=needed,
            triggered=triggered,
            near_miss=near_miss,
            evidence=tuple(sequence),
            summary=(
                f"{_wording.plural(count, 'direction reversal')} of {label} "
                f"in {_wording.span(sequence[0].at, situation.now)} ({chain})"
            ),
        ))
    return triggers


def _moves(event: ActionEvent) -> dict[str, ResourceChange]:
    """The event's first change on each dimension that moves it up or down, in one pass."""
    found: dict[str, ResourceChange] = {}
    for change in event.resource_changes:
        if change.direction:
            found.setdefault(change.dimension, change)
    return found


def _alternation_trigger(
    events: list[ActionEvent], proposed: ActionEvent, *, situation: Situation, policy: PatternPolicy,
) -> _Trigger | None:
    sequence = [event for event in [*events, proposed] if kind_of(event)]
    kinds = [kind_of(event) for event in sequence]
    if not _counting.ends_in_reversal(kinds):
        return None
    needed = _counting.required(policy, "alternations", 3)
    count = _counting.reversals(kinds)
    triggered, near_miss = _counting.reversal_verdict(count=count, needed=needed, length=len(sequence),
                                                      min_occurrences=policy.min_occurrences)
    return _Trigger(
        kind="alternation",
        key="alternation",
        count=count,
        needed=needed,
        triggered=triggered,
        near_miss=near_miss,
        evidence=tuple(sequence),
        summary=(
            f"{_wording.plural(count, 'alternation')} between scale and resource changes "
            f"in {_wording.span(sequence[0].at, situation.now)}"
        ),
    )


def kind_of(event: ActionEvent) -> str | None:
    """``resource`` if the event moves a resource (even if it also scales), ``scale``, or None."""
    if event.is_resource_change:
        return "resource"
    if event.is_scale:
        return "scale"
    return None


def _severity(chosen: list[_Trigger], policy: PatternPolicy) -> Severity:
    for trigger in chosen:
        if trigger.kind == "dimension" and trigger.count >= _counting.required(policy, "highReversals", 3):
            return Severity.HIGH
        if trigger.kind == "alternation" and trigger.count >= _counting.required(policy, "highAlternations", 4):
            return Severity.HIGH
    return Severity.MEDIUM


def _merge(events: list[ActionEvent], proposed: ActionEvent, chosen: list[_Trigger]) -> tuple[ActionEvent, ...]:
    """Evidence of several triggers as one list: each event once, in history order, the proposed last."""
    used = {id(event) for trigger in chosen for event in trigger.evidence}
    return (*(event for event in events if id(event) in used), proposed)


def _quantity(value: float | None, text: str | None) -> str:
    return text if text else _wording.number(value)
