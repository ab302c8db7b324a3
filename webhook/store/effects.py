"""Everything one decision asks the system of record to remember, as one serializable bundle.

The bundle is written to PostgreSQL in a single transaction keyed by the request uid, so it
lands exactly once whether it is written directly, replayed from the Redis outbox, or from
the local spool after both stores were down (DESIGN §7).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from webhook.actions.model import ActionEvent, TargetRef, flat
from webhook.decision.decide import AlertUpdate, Decision
from webhook.decision.state import Restriction
from webhook.detection.situation import Severity
from webhook.policy.model import Enforcement, PatternType, Strategy


@dataclasses.dataclass(frozen=True)
class Effects:
    uid: str
    decided_at: datetime.datetime
    event: ActionEvent                 # the judged event (recorded as history when ``record``)
    record: bool
    outcome: str
    allowed: bool
    code: int | None
    pattern: str | None
    strategy: str | None
    message: str | None
    warnings: tuple[str, ...]
    latency_ms: float
    degraded: str | None = None
    restriction: Restriction | None = None
    alert: AlertUpdate | None = None
    refusal_alert: str | None = None   # an existing restriction refused the request: count it on this alert
    consume_alert: str | None = None   # an approval on this alert was used by this request

    @property
    def plain(self) -> bool:
        """Nothing beyond the decision and the action: no restriction, alert or approval to write."""
        return (self.restriction is None and self.alert is None and self.refusal_alert is None
                and self.consume_alert is None)

    @classmethod
    def of(cls, decision: Decision, *, now: datetime.datetime, latency_ms: float,
           degraded: str | None = None) -> Effects:
        return cls(
            uid=decision.event.uid, decided_at=now, event=decision.event, record=decision.record,
            outcome=decision.outcome.value, allowed=decision.allowed, code=decision.code,
            pattern=decision.pattern or None, strategy=decision.strategy.value if decision.strategy else None,
            message=decision.message, warnings=tuple(decision.warnings), latency_ms=latency_ms, degraded=degraded,
            restriction=decision.restriction, alert=decision.alert,
            refusal_alert=decision.refused_by.alert if decision.refused_by else None,
            consume_alert=decision.consume.alert if decision.consume else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid, "decided_at": self.decided_at.isoformat(), "event": self.event.to_json(),
            "record": self.record, "outcome": self.outcome, "allowed": self.allowed, "code": self.code,
            "pattern": self.pattern, "strategy": self.strategy, "message": self.message,
            "warnings": list(self.warnings), "latency_ms": self.latency_ms, "degraded": self.degraded,
            "restriction": self.restriction.to_json() if self.restriction else None,
            "alert": alert_to_json(self.alert) if self.alert else None,
            "refusal_alert": self.refusal_alert, "consume_alert": self.consume_alert,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Effects:
        return cls(
            uid=data["uid"], decided_at=datetime.datetime.fromisoformat(data["decided_at"]),
            event=ActionEvent.from_json(data["event"]), record=data["record"], outcome=data["outcome"],
            allowed=data["allowed"], code=data["code"], pattern=data["pattern"], strategy=data["strategy"],
            message=data["message"], warnings=tuple(data["warnings"]), latency_ms=data["latency_ms"],
            degraded=data.get("degraded"),
            restriction=Restriction.from_json(data["restriction"]) if data.get("restriction") else None,
            alert=alert_from_json(data["alert"]) if data.get("alert") else None,
            refusal_alert=data.get("refusal_alert"), consume_alert=data.get("consume_alert"),
        )


def alert_to_json(alert: AlertUpdate) -> dict[str, Any]:
    return {
        "namespace": alert.namespace, "name": alert.name, "pattern": alert.pattern.value,
        "severity": alert.severity.value, "confidence": alert.confidence, "strategy": alert.strategy.value,
        "enforcement": alert.enforcement.value,
        "target": flat(alert.target) if alert.target else None,
        "actor": alert.actor, "message": alert.message, "summary": alert.summary,
        "evidence": [event.to_json() for event in alert.evidence], "phase": alert.phase, "denied": alert.denied,
        "new_occurrence": alert.new_occurrence,
        "cooldown_until": alert.cooldown_until.isoformat() if alert.cooldown_until else None,
        "alternative": alert.alternative, "approval_used_by": alert.approval_used_by,
    }


def alert_from_json(data: dict[str, Any]) -> AlertUpdate:
    return AlertUpdate(
        namespace=data["namespace"], name=data["name"], pattern=PatternType(data["pattern"]),
        severity=Severity(data["severity"]), confidence=data["confidence"], strategy=Strategy(data["strategy"]),
        enforcement=Enforcement(data["enforcement"]),
        target=TargetRef(**data["target"]) if data.get("target") else None, actor=data["actor"],
        message=data["message"], summary=data["summary"],
        evidence=tuple(ActionEvent.from_json(e) for e in data["evidence"]), phase=data["phase"],
        denied=data["denied"], new_occurrence=data["new_occurrence"],
        cooldown_until=datetime.datetime.fromisoformat(data["cooldown_until"]) if data.get("cooldown_until") else None,
        alternative=data.get("alternative"), approval_used_by=data.get("approval_used_by"),
    )
