"""The pure matching of truthful history: which waiting proposals an observed object confirms."""

from __future__ import annotations

import datetime
import json

from tests import reviews
from webhook.admission.extract import extract
from webhook.admission.review import parse_review
from webhook.engine.proposals import proposed_change
from webhook.kube.confirmations import Observed, satisfied, settle
from webhook.store.confirmation import ActionStatus, Operation, Proposed, Subject

T0 = datetime.datetime(2026, 12, 1, 9, 0, 0, 400_000, tzinfo=datetime.timezone.utc)


def proposal(uid: str, *, replicas: int = 5, old: str | None = "100", at: datetime.datetime = T0) -> Proposed:
    return Proposed(uid=uid, at=at, operation=Operation.UPDATE, subject=Subject("Deployment", "shop", "cart"),
                    change={"replicas": replicas}, actor=reviews.AGENT, target_key="shop/Deployment/cart",
                    old_version=old)


def deployment(*, replicas: int, version: str, uid: str = "u-1") -> Observed:
    obj = reviews.deployment(replicas=replicas)
    obj["metadata"].update(uid=uid, resourceVersion=version)
    observed = Observed.of("Deployment", obj)
    assert observed is not None
    return observed


def create(uid: str, *, name: str = "wfe-0123456789abcdef", at: datetime.datetime = T0) -> Proposed:
    return Proposed(uid=uid, at=at, operation=Operation.CREATE,
                    subject=Subject("PipelineRun", "kubernaut-workflows", name), change={"create": True},
                    actor=reviews.AGENT)


def pipelinerun(*, name: str = "wfe-0123456789abcdef", created: str, uid: str = "pr-1") -> Observed:
    observed = Observed.of("PipelineRun", {"metadata": {
        "name": name, "namespace": "kubernaut-workflows", "uid": uid, "resourceVersion": "7",
        "creationTimestamp": created}, "spec": {}})
    assert observed is not None
    return observed


def test_a_landed_scale_is_confirmed_by_the_object_showing_its_replicas():
    [resolution] = settle([proposal("a")], deployment(replicas=5, version="101"))
    assert resolution.uid == "a" and resolution.status is ActionStatus.CONFIRMED
    assert resolution.object_uid == "u-1" and resolution.observed_version == "101"


def test_an_object_not_yet_past_the_old_version_or_without_the_value_confirms_nothing():
    assert settle([proposal("a")], deployment(replicas=5, version="100")) == []  # the state it was proposed on
    assert settle([proposal("a")], deployment(replicas=3, version="101")) == []  # someone else's write


def test_a_patch_retried_on_conflict_counts_once():
    # The first review conflicted with a controller's write (RV 101); the API server re-ran admission
    # on the new object and the retry landed (RV 102): two uids, one change.
    first = proposal("first", old="100")
    retry = proposal("retry", old="101", at=T0 + datetime.timedelta(milliseconds=8))
    assert settle([first, retry], deployment(replicas=3, version="101")) == []
    resolutions = {r.uid: r for r in settle([first, retry], deployment(replicas=5, version="102"))}
    assert resolutions["retry"].status is ActionStatus.CONFIRMED
    assert resolutions["first"].status is ActionStatus.NOT_APPLIED
    assert "retry on conflict" in resolutions["first"].reason


def test_different_changes_that_both_show_are_both_confirmed():
    scale = proposal("scale")
    image = Proposed(uid="image", at=T0, operation=Operation.UPDATE, subject=scale.subject,
                     change={"images": {"app": "registry.example/cart:1.0"}}, actor=reviews.AGENT)
    statuses = {r.uid: r.status for r in settle([scale, image], deployment(replicas=5, version="101"))}
    assert statuses == {"scale": ActionStatus.CONFIRMED, "image": ActionStatus.CONFIRMED}


def test_resources_match_by_quantity_not_spelling():
    spec = reviews.deployment(memory_limit="128Mi")["spec"]
    assert satisfied({"resources": {"app/memory/limits": 128 * 2**20}}, spec)
    assert not satisfied({"resources": {"app/memory/limits": 64 * 2**20}}, spec)
    assert not satisfied({"resources": {"other/memory/limits": 128 * 2**20}}, spec)
    assert not satisfied({}, spec)  # a proposal that sets nothing can never be confirmed


def test_a_created_pipelinerun_confirms_the_first_creation_of_its_name():
    [resolution] = settle([create("a")], pipelinerun(created="2026-12-01T09:00:00Z"))
    assert resolution.uid == "a" and resolution.status is ActionStatus.CONFIRMED and resolution.object_uid == "pr-1"


def test_a_409_recreate_finds_only_the_older_object_and_confirms_nothing():
    later = create("again", at=T0 + datetime.timedelta(seconds=5))
    assert settle([later], pipelinerun(created="2026-12-01T09:00:00Z")) == []


def test_generate_name_creations_match_by_prefix():
    prefixed = create("g", name="wfe-*")
    [resolution] = settle([prefixed], pipelinerun(name="wfe-x7k2p", created="2026-12-01T09:00:01Z"))
    assert resolution.status is ActionStatus.CONFIRMED
    assert settle([create("h", name="other-*")], pipelinerun(name="wfe-x7k2p", created="2026-12-01T09:00:01Z")) == []


def test_the_gate_proposes_what_the_watch_can_check():
    body = reviews.scale(before=3, after=5)
    body["request"]["oldObject"]["metadata"]["resourceVersion"] = "100"
    request = parse_review(json.dumps(body).encode()).request
    found = extract(request, now=T0)
    assert found is not None
    proposed = proposed_change(request, found.event)
    assert proposed is not None
    assert proposed.subject == Subject("Deployment", "shop", "cart")
    assert proposed.change == {"replicas": 5} and proposed.old_version == "100"
    body = reviews.pipelinerun(namespace="kubernaut-workflows")
    request = parse_review(json.dumps(body).encode()).request
    found = extract(request, now=T0)
    assert found is not None
    created = proposed_change(request, found.event)
    assert created is not None and created.operation is Operation.CREATE
    assert created.subject.kind == "PipelineRun" and created.subject.namespace == "kubernaut-workflows"
