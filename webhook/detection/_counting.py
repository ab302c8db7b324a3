"""Counting rules shared by the detectors: thresholds as whole numbers, reversals, confidence."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

from webhook.actions.model import ActionEvent
from webhook.detection.situation import Finding, Severity
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy


def required(policy: PatternPolicy, name: str, default: float) -> int:
    """A count threshold as the smallest whole number that meets it, at least 1.

    Thresholds arrive as floats (the CRD allows ``2.5``); a count of reversals or workloads is
    whole, so "≥ 2.5" means "≥ 3", and a near miss is one below that whole number.
    A threshold of 0 or less would make every action a pattern; it is treated as 1.
    """
    return max(1, math.ceil(policy.threshold(name, default)))


def reversals(directions: Sequence[object]) -> int:
    """How many times the direction differs from the one before (``+ - + -`` has 3)."""
    return sum(1 for before, after in itertools.pairwise(directions) if after != before)


def ends_in_reversal(directions: Sequence[object]) -> bool:
    """Whether the last direction (the proposed change) turns back on the one before it."""
    return len(directions) >= 2 and directions[-1] != directions[-2]


def reversal_verdict(*, count: int, needed: int, length: int, min_occurrences: int) -> tuple[bool, bool]:
    """``(triggered, near_miss)`` for a run of changes: triggered with at least ``needed``
    reversals over at least ``min_occurrences`` changes; a near miss when one more change,
    making one more reversal, would trigger it."""
    triggered = count >= needed and length >= min_occurrences
    near_miss = not triggered and count + 1 >= needed and length + 1 >= min_occurrences
    return triggered, near_miss


def confidence(observed: float, needed: float) -> float:
    """``observed / (2 × needed)``, capped to [0, 1].

    Exactly at the threshold this is 0.5 (the pattern has only just formed); at twice the
    threshold it is 1.0. A near miss (one short) scores below 0.5, so anyone sorting or
    filtering on confidence sees triggered findings above near misses of the same size.
    """
    if needed <= 0:
        return 1.0
    return max(0.0, min(1.0, observed / (2 * needed)))


def repetition_finding(*, pattern: PatternType, policy: PatternPolicy, counted: Sequence[ActionEvent],
                       proposed: ActionEvent,
                       summarise: Callable[[Sequence[ActionEvent]], str]) -> Finding | None:
    """The finding of a loop of one action: the ``counted`` earlier ineffective repetitions against
    ``minOccurrences`` − 1 (the proposed one completes the loop). Triggered at that many, a near
    miss one short, else None. Severity HIGH, CRITICAL at twice the count; the evidence is the
    counted repetitions and the proposed one."""
    needed = max(1, policy.min_occurrences - 1)
    count = len(counted)
    triggered = count >= needed
    if not triggered and not (count >= 1 and count == needed - 1):
        return None
    return Finding(
        pattern=pattern,
        policy=policy,
        triggered=triggered,
        severity=Severity.CRITICAL if count >= 2 * needed else Severity.HIGH,
        confidence=confidence(count, needed),
        evidence=(*counted, proposed),
        summary=summarise(counted),
    )
