"""What an ActionHistorySummary says about one target, from the facts read in one pass."""

from __future__ import annotations

import datetime

from webhook.actions.model import TargetRef
from webhook.summaries.targets import (
    ActiveRestriction,
    DetectedPattern,
    ScoredSample,
    TargetFacts,
    summary_name,
    target_summary,
)

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.timezone.utc)
CART = TargetRef(namespace="shop", kind="Deployment", name="cart", api_version="apps/v1")


def minutes(n: float) -> datetime.datetime:
    return T0 + datetime.timedelta(minutes=n)


def test_a_busy_target_with_a_pattern_a_cooling_period_and_scores():
    facts = TargetFacts(
        target=CART, total_actions=7, last_action_at=minutes(30),
        recent={"scale": 5, "increase_resources": 2},
        patterns=[
            DetectedPattern(pattern_type="resource-thrashing", severity="medium", occurrences=1,
                            last_seen=minutes(10), confidence=0.8, alert="shop/deployment-cart-resource-thrashing"),
            DetectedPattern(pattern_type="scale-oscillation", severity="high", occurrences=2,
                            last_seen=minutes(29), confidence=0.9166666, alert="shop/deployment-cart-scale-oscillation"),
        ],
        scores=[ScoredSample(at=minutes(i), action_type=kind, score=score) for i, (kind, score) in enumerate(
            [("scale", 0.2), ("scale", 0.4), ("increase_resources", 0.9), ("scale", 0.8), ("scale", 0.9)])],
        restriction=ActiveRestriction(pattern="scale-oscillation", strategy="cooling-period", until=minutes(59),
                                      alert="shop/deployment-cart-scale-oscillation"),
    )
    obj = target_summary(facts, cluster_id="Prod East")
    assert obj["apiVersion"] == "ai.prometheus-alerts-slm.io/v1" and obj["kind"] == "ActionHistorySummary"
    assert obj["metadata"]["name"] == "deployment-cart" and obj["metadata"]["namespace"] == "shop"
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "safety-gate",
                                         "ai.prometheus-alerts-slm.io/cluster-id": "prod-east"}
    assert obj["spec"] == {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop",
                                         "name": "cart"}, "target": "Deployment/cart"}
    status = obj["status"]
    assert status["totalActions"] == 7
    assert status["lastActionTime"] == "2026-11-01T12:30:00Z"
    assert status["actionsLast24h"] == {"increase_resources": 2, "scale": 5}
    assert status["patterns"] == "scale-oscillation,resource-thrashing"  # most recent first
    assert [p["patternType"] for p in status["detectedPatterns"]] == ["scale-oscillation", "resource-thrashing"]
    assert status["detectedPatterns"][0] == {
        "patternType": "scale-oscillation", "severity": "high", "occurrences": 2, "lastSeen": "2026-11-01T12:29:00Z",
        "confidence": 0.917, "alert": "shop/deployment-cart-scale-oscillation"}
    # (0.2 + 0.4 + 0.9 + 0.8 + 0.9) / 5; scale (0.2 + 0.4 + 0.8 + 0.9) / 4; the later half beats the earlier by > 0.1
    assert status["effectiveness"] == {"overallScore": 0.64, "actionTypeScores": {"increase_resources": 0.9,
                                                                                   "scale": 0.575},
                                       "recentTrend": "improving", "sampleSize": 5}
    assert status["activeRestriction"] == {"pattern": "scale-oscillation", "strategy": "cooling-period",
                                           "until": "2026-11-01T12:59:00Z",
                                           "alert": "shop/deployment-cart-scale-oscillation"}


def test_a_quiet_target_leaves_out_what_it_does_not_have():
    status = target_summary(TargetFacts(target=CART, total_actions=1, last_action_at=minutes(0)),
                            cluster_id="default")["status"]
    assert status == {"totalActions": 1, "lastActionTime": "2026-11-01T12:00:00Z", "actionsLast24h": {},
                      "detectedPatterns": []}


def test_summary_names_are_valid_object_names():
    assert summary_name(TargetRef(namespace="a", kind="StatefulSet", name="db.primary")) == "statefulset-db-primary"
    long = summary_name(TargetRef(namespace="a", kind="Deployment", name="x" * 300))
    assert len(long) <= 253 and long.startswith("deployment-x")
