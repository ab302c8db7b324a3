"""Issue 2 acceptance: realistic AdmissionReview sequences against a running ``safety-gate serve``
with real PostgreSQL and Redis, over HTTPS."""

from __future__ import annotations

import datetime
import re
import time

import pytest

from tests import reviews
from tests.gateproc import GateProcess
from tests.sql import fetch, scalar

UNTIL = re.compile(r"cooling period until (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \((\d+)s left\)")


def flap(gate: GateProcess, **kwargs) -> list[dict]:
    return [gate.decide(reviews.scale(before=b, after=a, **kwargs)) for b, a in [(3, 5), (5, 3), (3, 5)]]


def test_scale_flapping_by_a_service_account_is_cooled_on_the_second_reversal(gate, fresh_database):
    first, second, third = flap(gate)
    assert first["allowed"] and second["allowed"]
    assert third["allowed"] is False
    assert third["status"]["code"] == 429
    message = third["status"]["message"]
    assert message.startswith("safety-gate: scale-oscillation on Deployment shop/cart: 2 direction reversals")
    assert "(3→5→3→5)" in message
    until, left = UNTIL.search(message).groups()
    end = datetime.datetime.fromisoformat(until.replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(minutes=29) < end - now <= datetime.timedelta(minutes=30, seconds=1)
    assert 1700 < int(left) <= 1800
    # The cooling period refuses every further replica change on the target, in either direction.
    again = gate.decide(reviews.scale(before=5, after=4))
    assert again["status"]["code"] == 429
    assert scalar(fresh_database, "SELECT count(*) FROM resource_action_traces") == 2
    assert scalar(fresh_database, "SELECT denied_requests FROM oscillation_detections") == 2
    assert scalar(fresh_database, "SELECT count(*) FROM admission_decisions WHERE outcome = 'deny'") == 2


def test_the_same_flapping_by_a_person_is_allowed_with_warnings(gate):
    *_, third = flap(gate, user=reviews.PERSON)
    assert third["allowed"] is True
    assert any("would deny: scale-oscillation" in w for w in third["warnings"])
    assert all(len(w) <= 120 for w in third["warnings"])


def test_hpa_changes_are_recorded_but_never_denied(gate, fresh_database):
    for before, after in [(3, 5), (5, 3), (3, 5), (5, 3), (3, 5)]:
        answer = gate.decide(reviews.scale(before=before, after=after, user=reviews.HPA))
        assert answer["allowed"] is True
    assert scalar(fresh_database, "SELECT count(*) FROM resource_action_traces WHERE actor = $1", reviews.HPA) == 5


def test_hpa_history_counts_against_an_agent(gate):
    gate.decide(reviews.scale(before=3, after=5, user=reviews.HPA))
    gate.decide(reviews.scale(before=5, after=3, user=reviews.HPA))
    answer = gate.decide(reviews.scale(before=3, after=5))
    assert answer["allowed"] is False


def test_four_memory_increases_for_one_alert_escalate_on_the_fourth(gate, fresh_database):
    steps = [("64Mi", "128Mi"), ("128Mi", "256Mi"), ("256Mi", "512Mi"), ("512Mi", "1Gi")]
    answers = [gate.decide(reviews.memory_change(b, a, alert="KubePodOOMKilled")) for b, a in steps]
    assert [a["allowed"] for a in answers] == [True, True, True, False]
    assert answers[3]["status"]["code"] == 403
    message = answers[3]["status"]["message"]
    assert "ineffective-loop on Deployment shop/cart" in message
    assert "safety-gate approve shop/deployment-cart-ineffective-loop" in message
    assert scalar(fresh_database, "SELECT count(*) FROM oscillation_detections WHERE phase = 'PendingApproval'") == 1


def test_repeated_restart_pipelineruns_escalate(gate):
    answers = [gate.decide(reviews.pipelinerun(action_type="restart_pod", target="shop/Deployment/api"))
               for _ in range(4)]
    assert [a["allowed"] for a in answers] == [True, True, True, False]
    assert answers[3]["status"]["code"] == 403
    v1beta1 = gate.decide(reviews.pipelinerun(action_type="restart_pod", target="shop/Deployment/api",
                                              api_version="tekton.dev/v1beta1"))
    assert v1beta1["allowed"] is False


def test_dry_run_gets_the_decision_and_leaves_no_trace(gate, fresh_database):
    gate.decide(reviews.scale(before=3, after=5))
    gate.decide(reviews.scale(before=5, after=3))
    tables = ["resource_action_traces", "admission_decisions", "restrictions", "oscillation_detections"]
    before = {t: scalar(fresh_database, f"SELECT count(*) FROM {t}") for t in tables}
    answer = gate.decide(reviews.scale(before=3, after=5, dry_run=True))
    assert answer["allowed"] is False and answer["status"]["code"] == 429
    assert {t: scalar(fresh_database, f"SELECT count(*) FROM {t}") for t in tables} == before
    # And no cooling period started: a real request is judged afresh (and refused on its own).
    real = gate.decide(reviews.scale(before=3, after=5))
    assert real["status"]["code"] == 429


POLICY = """
apiVersion: ai.prometheus-alerts-slm.io/v1
kind: OscillationPattern
metadata:
  name: quick-cooling
spec:
  patternDefinition:
    patternType: scale-oscillation
    detectionCriteria:
      minOccurrences: 3
      timeWindow: 2h
      thresholds: {directionChanges: 2}
  preventionStrategy:
    strategy: cooling-period
    parameters: {cooldownPeriod: 3s}
"""


def test_a_short_cooling_period_from_a_policy_file_expires(gate_factory, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    gate = gate_factory(policy=policy)
    *_, third = flap(gate)
    assert third["status"]["code"] == 429
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # poll without side effects until the period is over
        if gate.decide(reviews.scale(before=3, after=5, dry_run=True))["allowed"]:
            break
        time.sleep(0.2)
    answer = gate.decide(reviews.scale(before=3, after=5))
    assert answer["allowed"] is True, answer


def test_history_survives_a_restart_on_the_same_data_dir(tmp_path):
    """Embedded stores under one data dir: stop the gate, start it again, the pattern continues."""
    data_dir = tmp_path / "gate-data"
    with GateProcess(data_dir=data_dir) as gate:
        gate.decide(reviews.scale(before=3, after=5))
        gate.decide(reviews.scale(before=5, after=3))
    with GateProcess(data_dir=data_dir) as gate:
        answer = gate.decide(reviews.scale(before=3, after=5))
    assert answer["allowed"] is False and answer["status"]["code"] == 429


def test_own_namespace_and_kube_system_are_never_gated(gate_factory):
    gate = gate_factory(env={"SAFETY_GATE_NAMESPACE": "gate-system"})
    for namespace in ("kube-system", "gate-system"):
        answers = [gate.decide(reviews.scale(before=b, after=a, namespace=namespace))
                   for b, a in [(3, 5), (5, 3), (3, 5), (5, 3)]]
        assert all(a["allowed"] for a in answers)


@pytest.mark.parametrize("body, problem", [
    (b"not json", "not valid JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}', "apiVersion"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {}}', "kind"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}', "request.uid"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "kind": 3}}',
     "request.kind"),
])
def test_bad_input_is_a_400_naming_the_problem(gate, body, problem):
    reply = gate.post(body)
    assert reply.status_code == 400
    assert problem in reply.json()["error"]


def test_oversized_body_is_a_400(gate):
    body = reviews.scale(before=1, after=2)
    body["request"]["object"]["metadata"]["annotations"] = {"x": "y" * (4 * 1024 * 1024)}
    reply = gate.post(body)
    assert reply.status_code == 400
    assert "over the limit" in reply.json()["error"]


def test_image_changes_are_updates_then_a_return_is_a_rollback(gate, fresh_database):
    v1, v2 = reviews.deployment(image="cart:1.0"), reviews.deployment(image="cart:2.0")
    restarted = reviews.deployment(image="cart:1.0", restarted_at="2026-11-21T21:00:00Z")
    gate.decide(reviews.workload_update(v1, v2))
    gate.decide(reviews.workload_update(v2, v1))
    gate.decide(reviews.workload_update(v1, restarted))
    rows = fetch(fresh_database, "SELECT action_type FROM resource_action_traces ORDER BY action_timestamp")
    assert [row["action_type"] for row in rows] == ["update_deployment", "rollback_deployment",
                                                     "restart_deployment"]


def test_one_agent_touching_five_workloads_is_blocked_in_that_namespace(gate):
    answers = [gate.decide(reviews.scale(name=f"svc-{i}", before=1, after=2)) for i in range(5)]
    assert [a["allowed"] for a in answers] == [True, True, True, True, False]
    assert answers[4]["status"]["code"] == 403
    assert "cascading-failure in namespace shop" in answers[4]["status"]["message"]
    # The block covers every action of that agent in the namespace, on any workload, for 60m...
    restart = gate.decide(reviews.pipelinerun(target="shop/Deployment/svc-0", action_type="restart_pod"))
    assert restart["allowed"] is False and "blocked until" in restart["status"]["message"]
    # ...but not other namespaces, nor other agents.
    assert gate.decide(reviews.scale(name="svc-0", namespace="payments", before=1, after=2))["allowed"]
    other = "system:serviceaccount:remediation:another-agent"
    assert gate.decide(reviews.scale(name="svc-9", before=1, after=2, user=other))["allowed"]


def test_readiness_reports_stores_and_policies(gate):
    assert gate.client.get("/readyz").json() == {
        "ready": True, "degraded": False, "stores": {"postgres": "up", "redis": "up"}, "history": "complete",
        "policies": "synced"}


def test_with_an_unreachable_cluster_the_gate_is_not_ready_until_it_has_the_policies(
        tmp_path, fresh_database, fresh_redis_url):
    from tests.gateproc import free_port

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{free_port()}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
""")
    gate = GateProcess(data_dir=tmp_path / "gate", postgres_dsn=fresh_database, redis_url=fresh_redis_url,
                       extra_args=["--kubeconfig", str(kubeconfig)])
    try:
        gate.start(probe="/healthz")
        answer = gate.client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["policies"] == "pending" and answer.json()["stores"]["postgres"] == "up"
    finally:
        gate.stop()
