"""Aggregation against hand-computed values."""

from __future__ import annotations

import datetime
import math

import hypothesis
import hypothesis.strategies as st
import pydantic
import pytest

from webhook.effectiveness.aggregate import Scope, ScoredAction, aggregate, aggregate_all
from webhook.effectiveness.model import Assessment
from webhook.effectiveness.stats import Sample, Trend, confidence_interval, summarise, t_critical, trend

T0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def samples(*scores: float) -> list[Sample]:
    return [Sample(at=T0 + datetime.timedelta(hours=i), score=s) for i, s in enumerate(scores)]


def test_mean_and_t_interval_by_hand() -> None:
    # 0.2, 0.4, 0.6, 0.8: mean 0.5, s = sqrt(((.3²+.1²)*2)/3) = sqrt(0.0666…) = 0.258199,
    # t(0.975, 3) = 3.182 → half-width 3.182 * 0.258199 / 2 = 0.410795.
    summary = summarise(samples(0.2, 0.4, 0.6, 0.8))
    assert summary.sample_size == 4
    assert summary.mean == pytest.approx(0.5)
    assert summary.ci_lower == pytest.approx(0.5 - 0.410795, abs=1e-6)
    assert summary.ci_upper == pytest.approx(0.5 + 0.410795, abs=1e-6)
    assert summary.trend is Trend.IMPROVING      # newer half .7 vs older .3


def test_interval_is_clamped_and_whole_for_one_sample() -> None:
    assert confidence_interval([0.7]) == (0.0, 1.0)
    lower, upper = confidence_interval([0.0, 1.0])   # mean .5 ± 12.706*.7071/1.414 → clamped
    assert (lower, upper) == (0.0, 1.0)
    assert confidence_interval([0.9, 0.9, 0.9]) == (pytest.approx(0.9), pytest.approx(0.9))


def test_t_critical_table_and_interpolation() -> None:
    assert t_critical(1) == 12.706
    assert t_critical(30) == 2.042
    assert t_critical(50) == pytest.approx(2.021 + (2.000 - 2.021) * (1 / 50 - 1 / 40) / (1 / 60 - 1 / 40))
    assert t_critical(10_000) == pytest.approx(1.96, abs=0.001)
    with pytest.raises(ValueError):
        t_critical(0)


def test_trend_thresholds() -> None:
    assert trend(samples(0.9, 0.1, 0.9)) is Trend.STABLE                 # under 4 samples
    assert trend(samples(0.5, 0.5, 0.6, 0.6)) is Trend.IMPROVING         # exactly +0.1
    assert trend(samples(0.5, 0.5, 0.59, 0.59)) is Trend.STABLE
    assert trend(samples(0.8, 0.8, 0.0, 0.7, 0.7)) is Trend.DECLINING    # middle sample ignored
    assert trend(list(reversed(samples(0.1, 0.1, 0.9, 0.9)))) is Trend.IMPROVING  # ordered by time, not input


def test_aggregate_scopes() -> None:
    actions = [
        ScoredAction(at=T0, score=0.2, action_type="restart_pod", namespace="shop", alert_name="A", model_used="m1"),
        ScoredAction(at=T0, score=0.6, action_type="restart_pod", namespace="shop", alert_name=None, model_used="m1"),
        ScoredAction(at=T0, score=1.0, action_type="restart_pod", namespace="web", alert_name="A", model_used=None),
        ScoredAction(at=T0, score=0.4, action_type="scale_deployment", namespace="web", alert_name="B"),
    ]
    glob = {(a.scope_value, a.action_type): a.summary.mean for a in aggregate(actions, scope=Scope.GLOBAL)}
    assert glob == {("global", "restart_pod"): pytest.approx(0.6), ("global", "scale_deployment"): pytest.approx(0.4)}
    ns = {(a.scope_value, a.action_type): a.summary.sample_size for a in aggregate(actions, scope=Scope.NAMESPACE)}
    assert ns == {("shop", "restart_pod"): 2, ("web", "restart_pod"): 1, ("web", "scale_deployment"): 1}
    alert = aggregate(actions, scope=Scope.ALERT, value="A")
    assert [(a.scope_value, a.action_type, a.summary.sample_size) for a in alert] == [("A", "restart_pod", 2)]
    model = aggregate(actions, scope=Scope.MODEL, action_type="restart_pod")
    assert [(a.scope_value, a.summary.sample_size) for a in model] == [("m1", 2)]
    assert len(aggregate_all(actions)) == 2 + 3 + 2 + 1   # global, namespace, alert (A, B), model


@hypothesis.given(st.lists(st.floats(min_value=0, max_value=1, allow_nan=False), min_size=1, max_size=200))
def test_interval_contains_the_mean_and_stays_in_bounds(scores: list[float]) -> None:
    summary = summarise(samples(*scores))
    assert 0.0 <= summary.ci_lower <= summary.mean + 1e-12
    assert summary.mean - 1e-12 <= summary.ci_upper <= 1.0
    assert math.isclose(summary.mean, sum(scores) / len(scores))


def test_assessment_validation() -> None:
    good = {"score": 1, "method": "manual",
            "criteria": {"alertResolved": True, "targetMetricImproved": False, "noNewAlertsGenerated": True,
                         "resourceStabilized": True, "sideEffectsMinimal": True}}
    assert Assessment.model_validate(good).score == 1.0
    for bad in ({**good, "score": 1.5}, {**good, "score": "0.5"}, {**good, "method": "guess"},
                {**good, "extra": 1}, {**good, "criteria": {**good["criteria"], "alertResolved": "yes"}},
                {k: v for k, v in good.items() if k != "criteria"}):
        with pytest.raises(pydantic.ValidationError):
            Assessment.model_validate(bad)
