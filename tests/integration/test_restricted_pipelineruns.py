"""A PipelineRun whose action type is a scale is a replica change still to come: a running gate
refuses it during a cooling period on its target, as it refuses ``kubectl scale`` — it used to
pass, because the PipelineRun carries no replica counts."""

from __future__ import annotations

from tests import reviews
from tests.sql import scalar


def test_a_scale_pipelinerun_is_refused_by_the_cooling_period_of_its_target(gate, fresh_database):
    answers = [gate.decide(reviews.scale(before=b, after=a)) for b, a in [(3, 5), (5, 3), (3, 5)]]
    assert [a["allowed"] for a in answers] == [True, True, False]
    assert answers[2]["status"]["code"] == 429
    recorded = scalar(fresh_database, "SELECT count(*) FROM resource_action_traces")

    for action_type in ("scale_deployment", "scale-deployment"):
        run = gate.decide(reviews.pipelinerun(action_type=action_type, target="shop/Deployment/cart"))
        assert run["allowed"] is False, run
        assert run["status"]["code"] == 429
        assert "cooling period until" in run["status"]["message"]
        assert "see oscillationalert shop/deployment-cart-scale-oscillation" in run["status"]["message"]
    assert scalar(fresh_database, "SELECT count(*) FROM resource_action_traces") == recorded

    # Other actions on the target, and scale runs on other targets, are not what the period restricts.
    restart = gate.decide(reviews.pipelinerun(action_type="restart_deployment", target="shop/Deployment/cart"))
    assert restart["allowed"] is True
    elsewhere = gate.decide(reviews.pipelinerun(action_type="scale_deployment", target="shop/Deployment/api"))
    assert elsewhere["allowed"] is True
