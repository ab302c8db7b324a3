"""One ``ActionHistorySummary`` per target with history. Pure: facts from PostgreSQL in, object out.

The facts (``TargetFacts`` and its parts) are read by ``webhook.store.summaries``.

The status follows the seed's ``ActionHistory`` status (``totalActions``, ``lastActionTime``,
``detectedPatterns``, ``effectivenessMetrics``) plus what a person needs next to it: how busy
the last 24 hours were, by action type, and the cooling period or block in force. Two flat
fields exist only for ``kubectl get ahs`` columns: ``status.patterns`` (the pattern types, comma
separated) and ``status.effectiveness.overallScore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from webhook.actions.model import TargetRef, rfc3339
from webhook.decision.state import dns_name
from webhook.effectiveness.stats import Sample, trend
from webhook.policy.model import API_GROUP
from webhook.store.summaries import RECENT, ActiveRestriction, DetectedPattern, ScoredSample, TargetFacts

__all__ = [
    "RECENT",
    "ActiveRestriction",
    "DetectedPattern",
    "ScoredSample",
    "TargetFacts",
    "effectiveness",
    "rounded",
    "summary_name",
    "target_summary",
]

API_VERSION = f"{API_GROUP}/v1"
KIND = "ActionHistorySummary"
PLURAL = "actionhistorysummaries"
MANAGED_BY = {"app.kubernetes.io/managed-by": "safety-gate"}


def summary_name(target: TargetRef) -> str:
    """``deployment-cart``: one summary per workload, in the workload's namespace."""
    return dns_name(f"{target.kind}-{target.name}")


def rounded(score: float) -> float:
    """Scores as the summaries show them: three decimals (kubectl prints what it gets)."""
    return round(score, 3)


def effectiveness(scores: Sequence[ScoredSample]) -> dict[str, Any] | None:
    """Mean score overall and per action type, and the trend; None without any assessed action."""
    if not scores:
        return None
    by_type: dict[str, list[float]] = {}
    for sample in scores:
        by_type.setdefault(sample.action_type, []).append(sample.score)
    return {
        "overallScore": rounded(sum(s.score for s in scores) / len(scores)),
        "actionTypeScores": {kind: rounded(sum(values) / len(values)) for kind, values in sorted(by_type.items())},
        "recentTrend": trend([Sample(at=s.at, score=s.score) for s in scores]).value,
        "sampleSize": len(scores),
    }


def target_status(facts: TargetFacts) -> dict[str, Any]:
    patterns = sorted(facts.patterns, key=lambda p: (p.last_seen, p.pattern_type), reverse=True)
    status: dict[str, Any] = {
        "totalActions": facts.total_actions,
        "actionsLast24h": dict(sorted(facts.recent.items())),
        "detectedPatterns": [
            {"patternType": p.pattern_type, "severity": p.severity, "occurrences": p.occurrences,
             "lastSeen": rfc3339(p.last_seen), "confidence": rounded(p.confidence), "alert": p.alert}
            for p in patterns
        ],
    }
    if facts.last_action_at is not None:
        status["lastActionTime"] = rfc3339(facts.last_action_at)
    if patterns:
        status["patterns"] = ",".join(dict.fromkeys(p.pattern_type for p in patterns))
    scores = effectiveness(facts.scores)
    if scores is not None:
        status["effectiveness"] = scores
    if facts.restriction is not None:
        r = facts.restriction
        status["activeRestriction"] = {"pattern": r.pattern, "strategy": r.strategy, "until": rfc3339(r.until),
                                       "alert": r.alert}
    return status


def target_ref(target: TargetRef) -> dict[str, str]:
    """The target as an object reference; a cluster-scoped one (a Node) has no namespace."""
    if target.cluster_scoped:
        return {"apiVersion": target.api_version or "v1", "kind": target.kind, "name": target.name}
    return {"apiVersion": target.api_version or "apps/v1", "kind": target.kind, "namespace": target.namespace,
            "name": target.name}


def target_summary(facts: TargetFacts, *, cluster_id: str, cluster_namespace: str = "default") -> dict[str, Any]:
    """The whole object, as server-side apply takes it: what it leaves out is removed. A
    cluster-scoped target's summary lives in ``cluster_namespace`` (the gate's)."""
    target = facts.target
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": summary_name(target), "namespace": target.home(cluster_namespace),
                     "labels": {**MANAGED_BY, f"{API_GROUP}/cluster-id": dns_name(cluster_id)[:63]}},
        "spec": {
            "targetRef": target_ref(target),
            "target": f"{target.kind}/{target.name}",
        },
        "status": target_status(facts),
    }
