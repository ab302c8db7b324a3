"""EffectivenessMetric objects: per action type, per alert, per model; one per namespace plus the cluster."""

from __future__ import annotations

import datetime

import pytest

from webhook.effectiveness.aggregate import ScoredAction
from webhook.effectiveness.stats import Summary, Trend
from webhook.summaries.effectiveness import effectiveness_metrics, recommended_usage, scope_status

T0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def action(i: int, score: float, action_type: str, *, namespace: str = "shop", alert: str | None = None,
           model: str | None = None) -> ScoredAction:
    return ScoredAction(at=T0 + datetime.timedelta(hours=i), score=score, action_type=action_type,
                        namespace=namespace, alert_name=alert, model_used=model)


ACTIONS = [
    action(0, 0.2, "scale", alert="HighLatency", model="small"),
    action(1, 0.3, "scale", alert="HighLatency", model="small"),
    action(2, 0.9, "restart_pod", alert="HighLatency", model="large"),
    action(3, 0.7, "restart_pod", alert="PodOOM", model="large", namespace="pay"),
    action(4, 0.9, "increase_resources", alert="PodOOM", model="large", namespace="pay"),
    action(5, 0.8, "increase_resources", model="large", namespace="pay"),
    action(6, 0.9, "increase_resources", model="large", namespace="pay"),
]


def test_per_action_type_with_interval_and_trend():
    by_type = scope_status(ACTIONS)["effectiveness"]["byActionType"]
    assert sorted(by_type) == ["increase_resources", "restart_pod", "scale"]
    resources = by_type["increase_resources"]
    assert resources["sampleSize"] == 3
    assert resources["averageScore"] == pytest.approx(0.867, abs=1e-3)
    # mean ± t(0.975, 2) · s/√3 with s = 0.0577: 0.867 ± 0.143
    assert resources["confidenceInterval"] == {"lower": pytest.approx(0.723, abs=1e-3), "upper": 1.0}
    assert resources["trend"] == "stable"
    assert resources["lastUpdated"] == "2026-11-01T06:00:00Z"


def test_per_alert_the_most_and_least_effective_action():
    by_alert = scope_status(ACTIONS)["effectiveness"]["byAlertType"]
    assert by_alert == {
        "HighLatency": {"sampleSize": 3, "averageScore": pytest.approx(0.467, abs=1e-3),
                        "mostEffectiveAction": "restart_pod", "leastEffectiveAction": "scale"},
        "PodOOM": {"sampleSize": 2, "averageScore": 0.8, "mostEffectiveAction": "increase_resources",
                   "leastEffectiveAction": "restart_pod"},
    }


def test_per_model_a_recommendation():
    by_model = scope_status(ACTIONS)["effectiveness"]["byModel"]
    assert by_model["large"] == {"sampleSize": 5, "averageScore": 0.84, "accuracyTrend": "stable",
                                 "recommendedUsage": "primary"}
    assert by_model["small"]["recommendedUsage"] == "secondary"  # 2 samples: too few to judge


@pytest.mark.parametrize("n,mean,usage", [
    (5, 0.7, "primary"), (5, 0.69, "secondary"), (5, 0.4, "secondary"), (5, 0.39, "avoid"),
    (4, 0.95, "secondary"), (4, 0.05, "secondary"), (100, 0.1, "avoid"),
])
def test_recommended_usage_thresholds(n, mean, usage):
    assert recommended_usage(Summary(sample_size=n, mean=mean, ci_lower=0, ci_upper=1, trend=Trend.STABLE)) == usage


def test_one_object_per_namespace_plus_the_cluster():
    objects = effectiveness_metrics(ACTIONS, gate_namespace="safety-gate", cluster_id="prod")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"], o["spec"]["scope"]) for o in objects] == [
        ("safety-gate", "cluster", {"scopeType": "cluster", "scopeValue": "prod"}),
        ("pay", "namespace", {"scopeType": "namespace", "scopeValue": "pay"}),
        ("shop", "namespace", {"scopeType": "namespace", "scopeValue": "shop"}),
    ]
    cluster, pay, shop = (o["status"] for o in objects)
    assert (cluster["sampleSize"], pay["sampleSize"], shop["sampleSize"]) == (7, 4, 3)
    assert shop["averageScore"] == pytest.approx(0.467, abs=1e-3)
    assert sorted(shop["effectiveness"]["byActionType"]) == ["restart_pod", "scale"]
    assert all(o["spec"]["aggregationPeriod"] == "30d" for o in objects)


def test_no_assessed_actions_is_an_empty_cluster_object():
    (cluster,) = effectiveness_metrics([], gate_namespace="safety-gate", cluster_id="prod")
    assert cluster["status"] == {"sampleSize": 0, "effectiveness": {"byActionType": {}, "byAlertType": {},
                                                                   "byModel": {}}}
