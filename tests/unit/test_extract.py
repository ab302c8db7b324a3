"""Every request shape of DESIGN §2 becomes the right proposal."""

from __future__ import annotations

import datetime

import pytest

from tests import reviews
from webhook.admission.extract import extract
from webhook.admission.review import AdmissionReview

NOW = datetime.datetime(2026, 11, 21, 21, 0, tzinfo=datetime.timezone.utc)


def proposal_of(body):
    return extract(AdmissionReview.model_validate(body).request, now=NOW)


def test_scale_subresource_is_a_replica_change_without_labels():
    proposal = proposal_of(reviews.scale(before=3, after=5))
    event = proposal.event
    assert (event.action_type, event.replicas_before, event.replicas_after) == ("scale_deployment", 3, 5)
    assert event.target.key == "shop/Deployment/cart"
    assert event.object_kind == "Scale"
    assert proposal.labels is None


def test_statefulset_types_carry_the_suffix():
    assert proposal_of(reviews.scale(before=1, after=2, kind="StatefulSet")).event.action_type == "scale_statefulset"
    old = reviews.deployment(kind="StatefulSet", memory_limit="1Gi")
    new = reviews.deployment(kind="StatefulSet", memory_limit="2Gi")
    assert proposal_of(reviews.workload_update(old, new)).event.action_type == "increase_resources_statefulset"


def test_deployment_update_kinds():
    base = reviews.deployment()
    assert proposal_of(reviews.replicas_patch(3, 4)).event.action_type == "scale_deployment"
    up = proposal_of(reviews.memory_change("64Mi", "128Mi")).event
    assert up.action_type == "increase_resources"
    change = next(c for c in up.resource_changes if c.field == "limits")
    assert (change.before, change.after, change.direction) == (64 * 2**20, 128 * 2**20, 1)
    assert proposal_of(reviews.memory_change("1Gi", "512Mi")).event.action_type == "decrease_resources"
    restarted = reviews.deployment(restarted_at="2026-11-21T20:59:00Z")
    assert proposal_of(reviews.workload_update(base, restarted)).event.action_type == "restart_deployment"
    new_image = reviews.deployment(image="registry.example/cart:2.0")
    proposal = proposal_of(reviews.workload_update(base, new_image))
    assert proposal.event.action_type == "update_deployment"
    assert proposal.image_candidates == ("registry.example/cart:2.0",)
    assert proposal.labels == {"app": "cart"}


def test_metadata_only_update_is_not_an_action():
    old = reviews.deployment()
    new = reviews.deployment(annotations={"deployment.kubernetes.io/revision": "5"})
    assert proposal_of(reviews.workload_update(old, new)) is None


def test_context_annotations_are_read():
    annotations = {reviews.PREFIX + "alert-name": "HighMemory", reviews.PREFIX + "correlation-id": "c-1",
                   reviews.PREFIX + "model-used": "gpt-oss", reviews.PREFIX + "confidence": "0.8",
                   reviews.PREFIX + "bypass": "incident 42"}
    old = reviews.deployment(annotations=annotations)
    new = reviews.deployment(annotations=annotations, replicas=6)
    event = proposal_of(reviews.workload_update(old, new)).event
    assert (event.alert_name, event.correlation_id, event.model_used, event.confidence, event.bypass) == (
        "HighMemory", "c-1", "gpt-oss", 0.8, "incident 42")


@pytest.mark.parametrize("api_version", ["tekton.dev/v1", "tekton.dev/v1beta1"])
def test_pipelinerun_target_and_type_from_params(api_version):
    event = proposal_of(reviews.pipelinerun(api_version=api_version, target="shop/deployment/cart")).event
    assert event.action_type == "restart_pod"
    assert event.target.key == "shop/Deployment/cart"
    assert event.alert_name == "KubePodCrashLooping"
    assert event.object_kind == "PipelineRun"


def test_pipelinerun_target_precedence_and_label_form():
    label_only = reviews.pipelinerun(params=[], labels={"kubernaut.ai/target-resource": "shop__Deployment__api",
                                                        reviews.PREFIX + "action-type": "scale_deployment"})
    event = proposal_of(label_only).event
    assert (event.target.key, event.action_type) == ("shop/Deployment/api", "scale_deployment")
    both = reviews.pipelinerun(target="a/Deployment/first",
                               annotations={"kubernaut.ai/target-resource": "b/Deployment/second"})
    assert proposal_of(both).event.target.key == "a/Deployment/first"
    annotation = reviews.pipelinerun(params=[], annotations={reviews.PREFIX + "target-resource": "c/StatefulSet/db"})
    assert proposal_of(annotation).event.target.key == "c/StatefulSet/db"


def test_pipelinerun_action_type_fallbacks():
    workflow = reviews.pipelinerun(params=[], labels={"kubernaut.ai/workflow-id": "oom-recovery"})
    assert proposal_of(workflow).event.action_type == "oom-recovery"
    assert proposal_of(reviews.pipelinerun(params=[])).event.action_type == "kubernaut-action"


def test_untargeted_pipelinerun_is_still_a_proposal():
    event = proposal_of(reviews.pipelinerun(target=None)).event
    assert event.target is None


def test_other_requests_are_not_judged():
    body = reviews.scale(before=1, after=2)
    body["request"]["resource"]["resource"] = "replicasets"
    assert proposal_of(body) is None
    pr = reviews.pipelinerun()
    pr["request"]["operation"] = "UPDATE"
    assert proposal_of(pr) is None


def test_nul_characters_in_free_text_are_dropped():
    body = reviews.pipelinerun(alert="Kube\x00Pod", target="shop/Deployment/ca\x00rt", action_type="re\x00start")
    event = proposal_of(body).event
    assert (event.alert_name, event.target.name, event.action_type) == ("KubePod", "cart", "restart")


def test_a_dry_run_flag_of_the_wrong_type_is_a_bad_review():
    import json

    from webhook.admission.review import BadReview, parse_review

    body = reviews.scale(before=1, after=2)
    body["request"]["dryRun"] = "yes"
    with pytest.raises(BadReview) as error:
        parse_review(json.dumps(body).encode())
    assert error.value.field == "request.dryRun"
    body["request"]["dryRun"] = None  # omitted by some API server versions: not a dry run
    assert parse_review(json.dumps(body).encode()).request.dryRun is False
