"""A verdict as plain JSON — the shape ``safety-gate explain --json``, ``replay --json`` and the
MCP tools share, so agents and scripts read one format."""

from __future__ import annotations

from typing import Any

from webhook.actions.model import ActionEvent
from webhook.detection.situation import Finding
from webhook.engine.gate import GateResult


def evidence_json(event: ActionEvent) -> dict[str, Any]:
    return {
        "timestamp": event.at.isoformat(), "action_type": event.action_type, "actor": event.actor,
        "summary": event.summary(), "request_uid": event.uid,
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "pattern_type": finding.pattern.value,
        "triggered": finding.triggered,
        "severity": finding.severity.value,
        "confidence": round(finding.confidence, 3),
        "summary": finding.summary,
        "strategy": finding.policy.strategy.value,
        "policy": finding.policy.name,
        "scope": str(finding.scope),
        "counterpart": finding.counterpart,
        "alternative": finding.alternative,
        "evidence": [evidence_json(event) for event in finding.evidence],
    }


def summary(result: GateResult) -> dict[str, Any]:
    """The verdict and why: the response fields plus the decision's pattern, strategy and evidence."""
    response = result.response["response"]
    status = response.get("status") or {}
    body: dict[str, Any] = {
        "uid": response["uid"],
        "allowed": response["allowed"],
        "code": status.get("code"),
        "message": status.get("message"),
        "warnings": list(response.get("warnings") or []),
        "gated": result.decision is not None,
        "dry_run": result.dry_run,
    }
    decision = result.decision
    if decision is None:
        body.update(outcome="allow", pattern=None, strategy=None, findings=[], refused_by=None)
        return body
    event = decision.event
    body.update(
        outcome=decision.outcome.value,
        pattern=decision.pattern or None,
        strategy=decision.strategy.value if decision.strategy else None,
        target=event.target.key if event.target else None,
        action_type=event.action_type,
        change=event.summary(),
        actor=event.actor,
        actor_class=event.actor_class.value,
        findings=[finding_json(f) for f in decision.findings],
        refused_by=None if decision.refused_by is None else {
            "pattern_type": decision.refused_by.pattern.value,
            "strategy": decision.refused_by.strategy.value,
            "until": decision.refused_by.until.isoformat(),
            "alert": decision.refused_by.alert,
            "evidence": decision.refused_by.evidence,
        },
    )
    if decision.outcome.value == "dryrun-deny" and not body["message"]:
        body["message"] = decision.message
    return body
