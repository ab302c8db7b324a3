"""Kubernaut's EffectivenessAssessments as the gate scores them (webhook.kube.kubernaut): the
weighted score 0.40 health + 0.35 alert + 0.25 metrics over what was assessed, only once Completed."""

from __future__ import annotations

import pytest

from webhook.kube.kubernaut import assessment_of, weighted_score


def ea(phase="Completed", reason="full", **components) -> dict:
    return {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "EffectivenessAssessment",
            "metadata": {"name": "ea-rr-cart-3", "namespace": "kubernaut-system", "uid": "u-1"},
            "spec": {"correlationID": "rr-cart-3", "signalName": "KubePodCrashLooping",
                     "remediationTarget": {"kind": "Deployment", "name": "cart", "namespace": "shop"}},
            "status": {"phase": phase, "assessmentReason": reason, "components": components}}


def test_all_three_components_are_weighted_as_kubernaut_weighs_them():
    assert weighted_score({"healthScore": 1.0, "alertScore": 1.0, "metricsScore": 1.0}) == 1.0
    assert weighted_score({"healthScore": 1.0, "alertScore": 0.0, "metricsScore": 0.0}) == pytest.approx(0.4)
    assert weighted_score({"healthScore": 0.0, "alertScore": 1.0, "metricsScore": 0.0}) == pytest.approx(0.35)
    assert weighted_score({"healthScore": 0.5, "alertScore": 1.0, "metricsScore": 0.2}) == pytest.approx(0.6)


def test_unassessed_components_are_left_out_not_counted_as_zero():
    # No Prometheus: health and alert only, their weights renormalised (0.40 and 0.35 of 0.75).
    assert weighted_score({"healthScore": 1.0, "alertScore": 0.0}) == pytest.approx(0.4 / 0.75, abs=1e-6)
    assert weighted_score({"healthScore": None, "alertScore": 1.0}) == 1.0
    assert weighted_score({}) is None
    # Nonsense is not a score: out of range, booleans, text.
    assert weighted_score({"healthScore": 1.5, "alertScore": True, "metricsScore": "1"}) is None


def test_a_completed_assessment_gives_score_criteria_and_the_remediation_it_belongs_to():
    found = assessment_of(ea(healthScore=1.0, alertScore=1.0, metricsScore=0.2))
    assert found is not None
    assert found.correlation_id == "rr-cart-3" and found.key == "kubernaut-system/ea-rr-cart-3"
    assessment = found.assessment
    assert assessment.score == pytest.approx(0.8)
    assert assessment.method.value == "automated"
    assert assessment.criteria.model_dump() == {
        "alertResolved": True, "targetMetricImproved": False, "noNewAlertsGenerated": True,
        "resourceStabilized": True, "sideEffectsMinimal": True}
    assert assessment.notes == ("Kubernaut EffectivenessAssessment kubernaut-system/ea-rr-cart-3 (full): "
                                "health 1, alert 1, metrics 0.2")


@pytest.mark.parametrize("obj", [
    ea(phase="Assessing", healthScore=1.0),                 # not finished
    ea(phase="Failed", healthScore=1.0),                    # could not be performed
    ea(reason="no_execution"),                              # completed, nothing assessed
    {"spec": {}, "status": {"phase": "Completed", "components": {"healthScore": 1.0}}},  # no correlation id
    {},
])
def test_nothing_to_record(obj):
    assert assessment_of(obj) is None
