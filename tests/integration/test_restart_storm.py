"""Restart storm (DESIGN §2, §4) end to end: pod deletions by an agent against a running gate with
real PostgreSQL and Redis. Three restarts of one Deployment's pods within the hour, unassessed,
and the fourth is refused 403 with an escalation; the pods' names change, the workload does not."""

from __future__ import annotations

from tests import pod_reviews, reviews
from tests.gateproc import GateProcess
from tests.sql import scalar


def restart(gate: GateProcess, suffix: str, **kwargs) -> dict:
    return gate.decide(pod_reviews.pod_delete(pod_reviews.pod(f"cart-7d9f8b6c5d-{suffix}"), **kwargs))


def test_the_fourth_restart_of_one_deployments_pods_escalates(gate, fresh_database):
    answers = [restart(gate, suffix) for suffix in ("aaaaa", "bbbbb", "ccccc")]
    assert all(answer["allowed"] for answer in answers)
    assert any("restart-storm" in warning for warning in answers[2].get("warnings", []))  # a near miss
    fourth = restart(gate, "ddddd")
    assert fourth["allowed"] is False
    assert fourth["status"]["code"] == 403
    message = fourth["status"]["message"]
    assert message.startswith("safety-gate: restart-storm on Deployment shop/cart: 3 earlier pod restarts")
    assert "oscillationalert shop/deployment-cart-restart-storm" in message
    assert scalar(fresh_database, "SELECT count(*) FROM resource_action_traces WHERE action_type = 'restart_pod'") == 3
    # Another workload's pods are unaffected, and the HPA-like controllers' deletions are not gated.
    other = gate.decide(pod_reviews.pod_delete(pod_reviews.pod("api-5f5f5f5f5f-aaaaa", deployment="api",
                                                               template_hash="5f5f5f5f5f")))
    assert other["allowed"] is True
    controller = restart(gate, "eeeee", user="system:serviceaccount:kube-system:replicaset-controller")
    assert controller["allowed"] is True and not controller.get("warnings")
    assert scalar(fresh_database, "SELECT count(*) FROM resource_action_traces WHERE action_type = 'restart_pod'") == 4


def test_a_person_restarting_is_warned_not_refused(gate):
    person = {"user": reviews.PERSON, "groups": ["system:authenticated"]}
    answers = [restart(gate, suffix, **person) for suffix in ("aaaaa", "bbbbb", "ccccc", "ddddd")]
    assert all(answer["allowed"] for answer in answers)
    assert any("would deny: restart-storm" in warning for warning in answers[3]["warnings"])


def test_one_pod_deletion_admitted_twice_is_one_restart(gate, fresh_database):
    """The API server admits a pod DELETE more than once (graceful deletion, then the delete):
    each admission has its own request uid, the pod's uid makes them one restart."""
    pod = pod_reviews.pod("cart-7d9f8b6c5d-twice")
    pod["metadata"]["uid"] = "0b6f3c1e-pod-uid"
    answers = [gate.decide(pod_reviews.pod_delete(pod)) for _ in range(3)]
    assert all(answer["allowed"] for answer in answers)
    assert scalar(fresh_database, "SELECT count(*) FROM resource_action_traces WHERE action_type = 'restart_pod'") == 1
    assert scalar(fresh_database, "SELECT request_uid FROM resource_action_traces") == "pod-delete:0b6f3c1e-pod-uid"
