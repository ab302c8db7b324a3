"""Run every pattern's detector that has a policy, and order what they found.

The registry (``webhook.detection.registry``) maps each pattern to its detector so the decision layer, the REST API and the MCP
tools all ask the same question the same way.

Order of the result (the decision layer takes the first as the one that decides, and names
the others): triggered findings before near misses; within each, the strongest prevention
strategy first (``Strategy.strength``: escalate-human > block-action > alternative-action >
cooling-period), then the higher severity, then the higher confidence, then the pattern name so
the order never depends on dict iteration.

Before running, the situation is narrowed defensively: ``history`` to events on the proposed
target and ``actor_history`` to the proposing actor's events. Callers are meant to pass exactly
that, but an unrelated event slipping in must not be able to change a verdict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from webhook.detection.registry import REGISTRY, Detector
from webhook.detection.situation import Finding, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

DETECTORS: Mapping[PatternType, Detector] = {spec.pattern: spec.detect for spec in REGISTRY}


def detect_all(situation: Situation, policies: Mapping[PatternType, PatternPolicy]) -> list[Finding]:
    """Triggered findings and near misses for every pattern that has a policy, strongest first."""
    situation = _narrowed(situation)
    findings = [
        finding
        for pattern, policy in policies.items()
        if pattern in DETECTORS
        for finding in [DETECTORS[pattern](situation, policy)]
        if finding is not None
    ]
    return sorted(findings, key=order)


def order(finding: Finding) -> tuple[bool, int, int, float, str]:
    """Sort key: triggered first, then strategy strength, severity, confidence (all descending)."""
    return (
        not finding.triggered,
        -finding.policy.strategy.strength,
        -finding.severity.rank,
        -finding.confidence,
        finding.pattern.value,
    )


def _narrowed(situation: Situation) -> Situation:
    proposed = situation.proposed
    target = proposed.target.key if proposed.target is not None else None
    history = [
        event for event in situation.history
        if target is None or (event.target is not None and event.target.key == target)
    ]
    actor_history = [event for event in situation.actor_history if event.actor == proposed.actor]
    if len(history) == len(situation.history) and len(actor_history) == len(situation.actor_history):
        return situation
    return dataclasses.replace(situation, history=tuple(history), actor_history=tuple(actor_history))
