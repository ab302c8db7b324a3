"""A PipelineRun whose action type is a scale and that names its replicas counts as a scale (issue 13, item 6)."""

from __future__ import annotations

from tests import reviews
from tests.unit.decision.test_decide import RULES, policies
from tests.unit.detection.factories import NOW, scale
from webhook.admission.extract import extract
from webhook.admission.review import AdmissionReview
from webhook.decision import GateState, Outcome, decide
from webhook.decision.decide import prepare
from webhook.detection.situation import Situation
from webhook.policy.model import PatternType


def scaling_run(*params: tuple[str, str]) -> dict:
    return reviews.pipelinerun(params=[{"name": "ACTION_TYPE", "value": "scale_deployment"},
                                       {"name": "TARGET_RESOURCE", "value": "shop/Deployment/cart"},
                                       *({"name": name, "value": value} for name, value in params)])


def proposal_of(body):
    return extract(AdmissionReview.model_validate(body).request, now=NOW)


def test_the_params_give_the_replica_counts():
    event = proposal_of(scaling_run(("CURRENT_REPLICAS", "5"), ("REPLICAS", "3"))).event
    assert (event.replicas_before, event.replicas_after) == (5, 3)
    assert event.is_scale and event.replica_direction == -1


def test_a_count_that_is_not_one_is_left_out():
    for value in ("three", "-1", "2.5", str(2**31)):
        event = proposal_of(scaling_run(("REPLICAS", value))).event
        assert event.replicas_after is None, value


def test_the_count_it_changes_from_is_the_targets_last_known_one():
    proposal = proposal_of(scaling_run(("REPLICAS", "3")))
    assert proposal.event.replicas_before is None
    event = prepare(proposal, rules=RULES, history=[scale(3, 4, at=-50), scale(4, 5, at=-30)])
    assert (event.replicas_before, event.replicas_after) == (5, 3)
    # Without history there is nothing to compare with: recorded, not counted as a scale.
    assert not prepare(proposal, rules=RULES, history=[]).is_scale


def test_only_scaling_runs_take_a_count_from_history():
    body = reviews.pipelinerun(params=[{"name": "ACTION_TYPE", "value": "restart_pod"},
                                       {"name": "TARGET_RESOURCE", "value": "shop/Deployment/cart"},
                                       {"name": "REPLICAS", "value": "3"}])
    event = prepare(proposal_of(body), rules=RULES, history=[scale(3, 5, at=-30)])
    assert not event.is_scale


def test_a_scaling_run_that_reverses_twice_is_cooled_like_kubectl_scale():
    proposal = proposal_of(scaling_run(("REPLICAS", "5")))
    history = [scale(3, 5, at=-40), scale(5, 3, at=-20)]
    event = prepare(proposal, rules=RULES, history=history)
    decision = decide(proposal=proposal, situation=Situation(proposed=event, now=NOW, history=history),
                      policies=policies(), state=GateState(),
                      rules=RULES)
    assert decision.outcome is Outcome.DENY and decision.code == 429
    assert decision.findings[0].pattern is PatternType.SCALE_OSCILLATION
    assert "(3→5→3→5)" in decision.message
