"""Pod restarts (DESIGN §2): a pod DELETE or an eviction by automation or a person is
``restart_pod`` on the pod's workload; the kubelet's, nodes' and controllers' are not gated."""

from __future__ import annotations

import datetime

import pytest

from tests import pod_reviews
from tests.reviews import PREFIX
from webhook.admission.extract import extract
from webhook.admission.review import AdmissionReview

NOW = datetime.datetime(2026, 11, 21, 21, 0, tzinfo=datetime.timezone.utc)


def proposal_of(body):
    return extract(AdmissionReview.model_validate(body).request, now=NOW)


def test_deleting_a_deployments_pod_restarts_the_deployment():
    proposal = proposal_of(pod_reviews.pod_delete(pod_reviews.pod(annotations={PREFIX + "alert-name": "CrashLoop"})))
    event = proposal.event
    assert (event.action_type, event.target.key, event.object_kind) == ("restart_pod", "shop/Deployment/cart", "Pod")
    assert event.alert_name == "CrashLoop"
    assert proposal.pod_to_resolve is None


def test_a_statefulsets_pod_is_the_statefulset_and_a_bare_pod_is_itself():
    sts = proposal_of(pod_reviews.pod_delete(pod_reviews.pod("db-0", statefulset="db", deployment=None)))
    assert sts.event.target.key == "shop/StatefulSet/db"
    bare = proposal_of(pod_reviews.pod_delete(pod_reviews.pod("debug", deployment=None)))
    assert bare.event.target.key == "shop/Pod/debug"


def test_a_replicaset_not_named_after_the_hash_stays_the_replicaset():
    pod = pod_reviews.pod("web-1")
    pod["metadata"]["ownerReferences"][0]["name"] = "handmade-rs"
    assert proposal_of(pod_reviews.pod_delete(pod)).event.target.key == "shop/ReplicaSet/handmade-rs"


def test_an_eviction_names_the_pod_for_the_gate_to_resolve():
    proposal = proposal_of(pod_reviews.eviction(annotations={PREFIX + "correlation-id": "c-1"}))
    assert proposal.event.action_type == "restart_pod"
    assert proposal.event.object_kind == "Eviction"
    assert proposal.event.target.key == "shop/Pod/cart-7d9f8b6c5d-x2x4q"  # until its owner is read
    assert proposal.pod_to_resolve == ("shop", "cart-7d9f8b6c5d-x2x4q")
    assert proposal.event.correlation_id == "c-1"


@pytest.mark.parametrize(("user", "groups"), [
    ("system:node:worker-1", ["system:nodes"]),
    ("system:serviceaccount:kube-system:replicaset-controller", None),
    ("system:serviceaccount:kube-system:generic-garbage-collector", None),
    ("system:kube-controller-manager", None),
    ("system:kube-scheduler", None),
])
def test_cluster_machinery_is_not_a_restart(user, groups):
    assert proposal_of(pod_reviews.pod_delete(user=user, groups=groups)) is None
    assert proposal_of(pod_reviews.eviction(user=user, groups=groups)) is None


def test_a_person_deleting_a_pod_is_a_restart_too():
    proposal = proposal_of(pod_reviews.pod_delete(user="alice@example.com", groups=["system:authenticated"]))
    assert proposal.event.action_type == "restart_pod" and proposal.username == "alice@example.com"


def test_pod_creates_and_updates_are_not_restarts():
    body = pod_reviews.pod_delete()
    body["request"]["operation"] = "UPDATE"
    body["request"]["object"] = body["request"]["oldObject"]
    assert proposal_of(body) is None


def node_update(before, after, *, labels_only=False):
    old = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1", "labels": {"a": "1"}},
           "spec": {} if before is None else {"unschedulable": before}}
    new = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "worker-1", "labels": {"a": "2" if labels_only else "1"}},
           "spec": {} if after is None else {"unschedulable": after}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "node-1", "kind": {"group": "", "version": "v1", "kind": "Node"},
        "resource": {"group": "", "version": "v1", "resource": "nodes"}, "name": "worker-1",
        "operation": "UPDATE", "userInfo": {"username": "system:serviceaccount:ops:agent"},
        "object": new, "oldObject": old}}


def test_a_cordon_and_an_uncordon_are_drain_node_on_the_cluster_scoped_node():
    cordon = proposal_of(node_update(None, True)).event
    assert (cordon.action_type, cordon.target.key, cordon.unschedulable) == ("drain_node", "/Node/worker-1", True)
    assert cordon.target.cluster_scoped
    assert proposal_of(node_update(True, False)).event.unschedulable is False
    assert proposal_of(node_update(True, None)).event.unschedulable is False


def test_other_node_updates_are_not_actions():
    assert proposal_of(node_update(None, None, labels_only=True)) is None
    assert proposal_of(node_update(True, True, labels_only=True)) is None


def update(resource, old, new, *, name, namespace="shop", user="system:serviceaccount:ops:agent"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": f"{resource}-1", "kind": {"group": "", "version": "v1", "kind": "X"},
        "resource": {"group": "", "version": "v1", "resource": resource}, "name": name, "namespace": namespace,
        "operation": "UPDATE", "userInfo": {"username": user}, "object": new, "oldObject": old}}


def pvc(storage):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
            "spec": {"resources": {"requests": {"storage": storage}}}}


def test_a_pvc_storage_request_increasing_is_expand_pvc():
    event = proposal_of(update("persistentvolumeclaims", pvc("1Gi"), pvc("2Gi"), name="data")).event
    assert (event.action_type, event.target.key) == ("expand_pvc", "shop/PersistentVolumeClaim/data")
    assert event.summary() == "data storage request 1Gi→2Gi"
    assert proposal_of(update("persistentvolumeclaims", pvc("2Gi"), pvc("2Gi"), name="data")) is None
    assert proposal_of(update("persistentvolumeclaims", pvc("2Gi"), pvc("1Gi"), name="data")) is None


def test_the_quarantine_label_set_on_a_pod_is_quarantine_pod_on_its_workload():
    old = pod_reviews.pod()
    new = pod_reviews.pod()
    new["metadata"]["labels"][PREFIX + "quarantine"] = "true"
    event = proposal_of(update("pods", old, new, name="cart-7d9f8b6c5d-x2x4q")).event
    assert (event.action_type, event.target.key) == ("quarantine_pod", "shop/Deployment/cart")
    assert proposal_of(update("pods", new, new, name="cart-7d9f8b6c5d-x2x4q")) is None  # already quarantined
    assert proposal_of(update("pods", new, old, name="cart-7d9f8b6c5d-x2x4q")) is None  # released
    assert proposal_of(update("pods", old, old, name="cart-7d9f8b6c5d-x2x4q")) is None


def test_an_eviction_from_a_cordoned_node_is_part_of_draining_it():
    from webhook.actions.model import TargetRef
    from webhook.admission.pods import evicted

    fallback = TargetRef("shop", "Pod", "cart-7d9f8b6c5d-x2x4q")
    pod = pod_reviews.pod()
    pod["spec"]["nodeName"] = "worker-1"
    action_type, target = evicted(fallback, pod, namespace="shop", node_unschedulable=True)
    assert (action_type, target.key) == ("drain_node", "/Node/worker-1")
    action_type, target = evicted(fallback, pod, namespace="shop", node_unschedulable=False)
    assert (action_type, target.key) == ("restart_pod", "shop/Deployment/cart")
    del pod["spec"]["nodeName"]
    assert evicted(fallback, pod, namespace="shop", node_unschedulable=None)[0] == "restart_pod"


def test_a_deleted_pods_event_carries_the_pods_uid():
    pod = pod_reviews.pod()
    pod["metadata"]["uid"] = "abc-123"
    assert proposal_of(pod_reviews.pod_delete(pod)).event.uid == "pod-delete:abc-123"
