"""cascading-failure: one actor changing many workloads at once (DESIGN §4).

Counts the distinct workloads (``TargetRef.key``) the proposing actor changed in the window,
the proposed target included even if it is new. Only the actor's own events count: the
actor history should hold nothing else, but an event by someone else is ignored rather
than trusted, since counting it would block an actor for another's work. Events without a
target are skipped; a proposed event without a target is never part of this pattern.

* ≥ ``clusterWorkloads`` (20) distinct workloads anywhere → triggered, ``Reach.CLUSTER``, CRITICAL.
* else ≥ ``namespaceWorkloads`` distinct workloads in the proposed target's namespace (the
  threshold overrides ``minOccurrences``, which is used when it is absent) → triggered,
  ``Reach.of_namespace(ns)``, HIGH.
* near miss: one workload short of either (and at least one workload besides the proposed),
  the cluster one reported when both are.

Confidence: workloads / (2 × required), capped at 1. Evidence: the actor's first event in the
window on each other workload in scope, oldest first, then the proposed event (which stands
for its own workload). The summary span runs from the first of those to now.
"""

from __future__ import annotations

from webhook.actions.model import ActionEvent
from webhook.detection import _counting, _history, _wording
from webhook.detection.situation import Breadth, Finding, Reach, Severity, Situation
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

PATTERN = PatternType.CASCADING_FAILURE


def detect(situation: Situation, policy: PatternPolicy) -> Finding | None:
    proposed = situation.proposed
    if proposed.target is None:
        return None
    namespace = proposed.target.namespace
    events = [event for event in _history.actor_events(situation, policy) if event.target is not None]

    everywhere = _first_per_target(events, proposed)
    in_namespace = {key: event for key, event in everywhere.items() if _namespace(event) == namespace}
    cluster_needed = _counting.required(policy, "clusterWorkloads", 20)
    namespace_needed = _counting.required(policy, "namespaceWorkloads", policy.min_occurrences)

    if len(everywhere) >= cluster_needed:
        return _finding(situation, policy, everywhere, needed=cluster_needed, triggered=True,
                        scope=Reach.CLUSTER, severity=Severity.CRITICAL)
    if len(in_namespace) >= namespace_needed:
        return _finding(situation, policy, in_namespace, needed=namespace_needed, triggered=True,
                        scope=Reach.of_namespace(namespace), severity=Severity.HIGH)
    # A near miss needs another workload besides the proposed one: with a threshold of 2,
    # "one more would trigger" is true of every first action and warns about nothing.
    if len(everywhere) == cluster_needed - 1 and len(everywhere) >= 2:
        return _finding(situation, policy, everywhere, needed=cluster_needed, triggered=False,
                        scope=Reach.CLUSTER, severity=Severity.CRITICAL)
    if len(in_namespace) == namespace_needed - 1 and len(in_namespace) >= 2:
        return _finding(situation, policy, in_namespace, needed=namespace_needed, triggered=False,
                        scope=Reach.of_namespace(namespace), severity=Severity.HIGH)
    return None


def _first_per_target(events: list[ActionEvent], proposed: ActionEvent) -> dict[str, ActionEvent]:
    """Each workload's first event in the window, keyed by target; the proposed stands for its own."""
    assert proposed.target is not None
    first: dict[str, ActionEvent] = {}
    for event in events:
        assert event.target is not None
        if event.target.key != proposed.target.key:
            first.setdefault(event.target.key, event)
    first[proposed.target.key] = proposed
    return first


def _namespace(event: ActionEvent) -> str:
    assert event.target is not None  # events without a target were left out before
    return event.target.namespace


def _finding(
    situation: Situation, policy: PatternPolicy, workloads: dict[str, ActionEvent], *,
    needed: int, triggered: bool, scope: Reach, severity: Severity,
) -> Finding:
    proposed = situation.proposed
    others = sorted((event for event in workloads.values() if event is not proposed), key=lambda e: e.at)
    evidence = (*others, proposed)
    if scope.breadth is Breadth.CLUSTER:
        namespaces = {_namespace(event) for event in evidence}
        where = f"in {_wording.plural(len(namespaces), 'namespace')}"
    else:
        where = f"in namespace {scope.namespace}"
    summary = (
        f"{_wording.plural(len(evidence), 'workload')} {where} changed by {proposed.actor} "
        f"in {_wording.span(evidence[0].at, situation.now)}"
    )
    return Finding(
        pattern=PATTERN,
        policy=policy,
        triggered=triggered,
        severity=severity,
        confidence=_counting.confidence(len(evidence), needed),
        evidence=evidence,
        summary=summary,
        scope=scope,
    )
