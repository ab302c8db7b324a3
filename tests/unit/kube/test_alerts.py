"""The pure half of the OscillationAlert writer: what a decision writes, and how status adds up."""

from __future__ import annotations

import datetime

from tests.unit.detection.factories import AGENT, CART, NOW, minutes, scale
from webhook.decision.decide import AlertUpdate, Decision, Outcome, Phase
from webhook.decision.state import Applies, Approval, Restriction, TargetScope
from webhook.detection.situation import Severity
from webhook.kube.alerts import (
    EVIDENCE_LIMIT,
    AlertWork,
    alert_spec,
    expired_status,
    merge_evidence,
    next_status,
    rfc3339,
    work_for,
)
from webhook.policy.model import Enforcement, PatternType, Strategy

EVIDENCE = (scale(3, 5, at=-30), scale(5, 3, at=-20), scale(3, 5, at=0))


def update(**changes: object) -> AlertUpdate:
    fields: dict[str, object] = dict(
        namespace="shop", name="deployment-cart-scale-oscillation", pattern=PatternType.SCALE_OSCILLATION,
        severity=Severity.MEDIUM, confidence=0.8, strategy=Strategy.COOLING_PERIOD, enforcement=Enforcement.ENFORCE,
        target=CART, actor=AGENT, message="safety-gate: scale-oscillation on Deployment shop/cart: ...",
        summary="2 direction reversals in 30m (3→5→3→5)", evidence=EVIDENCE, phase=Phase.ACTIVE, denied=True,
        new_occurrence=True, cooldown_until=minutes(30))
    fields.update(changes)
    return AlertUpdate(**fields)  # type: ignore[arg-type]


def restriction() -> Restriction:
    return Restriction(pattern=PatternType.SCALE_OSCILLATION, strategy=Strategy.COOLING_PERIOD,
                       scope=TargetScope("shop/Deployment/cart"), applies=Applies.REPLICAS, started=minutes(-5),
                       until=minutes(25), alert="shop/deployment-cart-scale-oscillation", evidence="...")


def test_a_detection_writes_spec_and_counts_one_occurrence_and_one_denial():
    work = work_for(Decision(outcome=Outcome.DENY, event=EVIDENCE[-1], alert=update()), cluster_id="prod")
    assert work is not None and work.key == "shop/deployment-cart-scale-oscillation"
    assert work.spec == {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "cart"},
        "target": "Deployment/cart", "patternType": "scale-oscillation", "severity": "medium", "confidence": 0.8,
        "strategy": "cooling-period", "enforcementAction": "enforce", "actor": AGENT,
        "message": "safety-gate: scale-oscillation on Deployment shop/cart: ...", "clusterId": "prod",
    }
    status = next_status({}, work, generation=1)
    assert status["occurrences"] == 1 and status["deniedRequests"] == 1
    assert status["phase"] == "Active"
    assert status["firstSeen"] == status["lastSeen"] == rfc3339(NOW)
    assert status["cooldownUntil"] == "2026-11-21T21:30:00Z"
    assert [e["summary"] for e in status["evidence"]] == ["replicas 3→5", "replicas 5→3", "replicas 3→5"]
    assert status["observedGeneration"] == 1


def test_a_refusal_by_a_cooling_period_counts_on_the_alert_it_names_and_touches_no_spec():
    refused = Decision(outcome=Outcome.DENY, event=scale(3, 4, at=5), code=429, message="cooling period ...",
                       record=False, refused_by=restriction())
    work = work_for(refused, cluster_id="prod")
    assert work is not None and work.spec is None and work.key == "shop/deployment-cart-scale-oscillation"
    before = {"phase": "Active", "occurrences": 1, "deniedRequests": 1, "firstSeen": rfc3339(NOW),
              "lastSeen": rfc3339(NOW), "evidence": [{"requestUid": "x", "timestamp": rfc3339(NOW)}]}
    after = next_status(before, work, generation=None)
    assert after["occurrences"] == 1 and after["deniedRequests"] == 2
    assert after["phase"] == "Active" and after["evidence"] == before["evidence"]
    assert after["lastSeen"] == rfc3339(minutes(5)) and after["firstSeen"] == rfc3339(NOW)


def test_a_person_warned_by_a_restriction_is_counted_as_warned_not_denied():
    warned = Decision(outcome=Outcome.WARN, event=scale(3, 4, at=5), refused_by=restriction())
    work = work_for(warned, cluster_id="prod")
    assert work is not None and work.spec is None and work.warned and not work.denied
    after = next_status({"phase": "Active", "occurrences": 1, "deniedRequests": 1}, work, generation=None)
    assert after["deniedRequests"] == 1 and after["warnedRequests"] == 1 and after["phase"] == "Active"


def test_a_warn_mode_detection_counts_an_occurrence_and_a_warning():
    alert = update(enforcement=Enforcement.WARN, denied=False, cooldown_until=None)
    work = work_for(Decision(outcome=Outcome.WARN, event=EVIDENCE[-1], alert=alert), cluster_id="prod")
    assert work is not None and work.warned and not work.denied
    status = next_status({}, work, generation=1)
    assert status["occurrences"] == 1 and status["deniedRequests"] == 0 and status["warnedRequests"] == 1


def test_an_allowed_decision_without_findings_writes_nothing():
    assert work_for(Decision(outcome=Outcome.ALLOW, event=scale(3, 4)), cluster_id="prod") is None


def test_an_approval_used_records_who_and_when_and_the_phase_approved():
    approval = Approval(alert="shop/deployment-cart-ineffective-loop", approved_by="oncall", reason="fixed",
                        approved_at=minutes(-10))
    event = scale(3, 5)
    decision = Decision(outcome=Outcome.APPROVED, event=event, consume=approval,
                        alert=update(strategy=Strategy.ESCALATE_HUMAN, phase=Phase.APPROVED, denied=False,
                                     cooldown_until=None, approval_used_by=event.uid))
    work = work_for(decision, cluster_id="prod")
    assert work is not None
    status = next_status({"phase": "PendingApproval", "occurrences": 2, "deniedRequests": 2}, work, generation=3)
    assert status["phase"] == "Approved"
    assert status["approvalUsedBy"] == AGENT and status["approvalUsedAt"] == rfc3339(NOW)
    assert status["occurrences"] == 3 and status["deniedRequests"] == 2
    assert "cooldownUntil" not in status


def test_evidence_merges_by_request_uid_and_keeps_the_latest_fifty():
    existing = [{"requestUid": f"u{i}", "timestamp": rfc3339(minutes(i)), "summary": "old"} for i in range(60)]
    new = ({"requestUid": "u59", "timestamp": rfc3339(minutes(59)), "summary": "new"},
           {"requestUid": "u60", "timestamp": rfc3339(minutes(60)), "summary": "new"})
    merged = merge_evidence(existing, new)
    assert len(merged) == EVIDENCE_LIMIT
    assert [m["requestUid"] for m in merged][-3:] == ["u58", "u59", "u60"]
    assert merged[-2]["summary"] == "new" and merged[0]["requestUid"] == "u11"


def test_cascading_failure_alerts_name_the_scope_not_one_workload():
    spec = alert_spec(update(pattern=PatternType.CASCADING_FAILURE, name="agent-cascading-failure"), cluster_id="c")
    assert spec["targetRef"] == {"apiVersion": "v1", "kind": "Namespace", "name": "shop"}
    spec = alert_spec(update(pattern=PatternType.CASCADING_FAILURE, name="agent-cascading-failure-cluster"),
                      cluster_id="c")
    assert spec["targetRef"] == {"kind": "Cluster", "name": "c"} and spec["target"] == "Cluster/c"


def test_the_alternative_is_written_only_when_there_is_one():
    assert "alternative" not in alert_spec(update(), cluster_id="c")
    assert alert_spec(update(alternative="scale_deployment"), cluster_id="c")["alternative"] == "scale_deployment"


def _alert(phase: str, *, until: datetime.datetime | None = None, last: datetime.datetime = NOW) -> dict:
    status = {"phase": phase, "lastSeen": rfc3339(last)}
    if until is not None:
        status["cooldownUntil"] = rfc3339(until)
    return {"metadata": {"name": "a", "namespace": "shop"}, "spec": {"strategy": "cooling-period"}, "status": status}


def test_expiry_ends_active_alerts_whose_period_passed_and_stale_open_ones():
    day = datetime.timedelta(hours=24)
    assert expired_status(_alert("Active", until=minutes(30)), now=minutes(29), stale_after=day) is None
    ended = expired_status(_alert("Active", until=minutes(30)), now=minutes(30), stale_after=day)
    assert ended is not None and ended["phase"] == "Expired"
    assert ended["message"] == "expired: the cooling-period ended at 2026-11-21T21:30:00Z"
    # Escalations wait for a person, but not forever.
    assert expired_status(_alert("PendingApproval"), now=minutes(60 * 23), stale_after=day) is None
    stale = expired_status(_alert("PendingApproval"), now=minutes(60 * 24), stale_after=day)
    assert stale is not None and stale["phase"] == "Expired"
    # Finished alerts stay as they are.
    assert expired_status(_alert("Expired", until=minutes(-60)), now=minutes(60 * 48), stale_after=day) is None
    assert expired_status(_alert("Resolved"), now=minutes(60 * 48), stale_after=day) is None


def test_work_keys_are_namespace_and_name():
    work = AlertWork(namespace="shop", name="x", at=NOW, spec=None)
    assert work.key == "shop/x"
