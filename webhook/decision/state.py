"""What the gate remembers between requests, as seen by the pure decision: restrictions in force
(cooling periods and blocks) and approvals of escalations."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Sequence

from webhook.actions.model import ActionEvent, TargetRef
from webhook.detection.registry import Applies, Scope, changes_replicas, spec_of
from webhook.policy.model import Enforcement, PatternType, Strategy

__all__ = ["Applies", "Approval", "GateState", "Restriction", "alert_name", "changes_replicas", "dns_name"]


@dataclasses.dataclass(frozen=True)
class Restriction:
    """A cooling period or block in force on a target, or on an actor within a scope."""

    pattern: PatternType
    strategy: Strategy
    scope: str              # "target/<ns>/<Kind>/<name>" | "actor/<actor>/namespace/<ns>" | "actor/<actor>/cluster"
    applies: Applies        # which changes it refuses, from the pattern's spec
    started: datetime.datetime
    until: datetime.datetime
    alert: str              # "<namespace>/<name>" of the OscillationAlert
    evidence: str           # the finding's summary, repeated in every refusal
    target_key: str | None = None

    def refuses(self, event: ActionEvent, *, now: datetime.datetime) -> bool:
        if self.until <= now:
            return False
        if not self.applies.covers(event):
            return False
        if self.scope.startswith("target/"):
            return event.target is not None and self.scope == target_scope(event.target)
        if event.actor != _scope_actor(self.scope):
            return False
        if self.scope.endswith("/cluster"):
            return True
        return event.target is not None and self.scope.endswith(f"/namespace/{event.target.namespace}")

    def to_json(self) -> dict[str, object]:
        return {
            "pattern": self.pattern.value, "strategy": self.strategy.value, "scope": self.scope,
            "applies": self.applies.value, "started": self.started.isoformat(), "until": self.until.isoformat(),
            "alert": self.alert, "evidence": self.evidence, "target_key": self.target_key,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Restriction:
        return cls(
            pattern=PatternType(data["pattern"]), strategy=Strategy(data["strategy"]), scope=str(data["scope"]),
            applies=Applies(str(data["applies"])), started=datetime.datetime.fromisoformat(str(data["started"])),
            until=datetime.datetime.fromisoformat(str(data["until"])), alert=str(data["alert"]),
            evidence=str(data["evidence"]), target_key=str(data["target_key"]) if data.get("target_key") else None,
        )


def target_scope(target: TargetRef) -> str:
    return f"target/{target.key}"


def actor_scope(actor: str, scope: str) -> str:
    """``scope`` is a finding's scope: ``namespace/<ns>`` or ``cluster``."""
    return f"actor/{actor}/{scope}"


def _scope_actor(scope: str) -> str:
    body = scope[len("actor/"):]
    if body.endswith("/cluster"):
        return body[: -len("/cluster")]
    return body.rsplit("/namespace/", 1)[0]


@dataclasses.dataclass(frozen=True)
class Approval:
    """A person's approval of an escalation: lets the next matching action through once."""

    alert: str                    # "<namespace>/<name>"
    approved_by: str
    reason: str
    approved_at: datetime.datetime
    used_at: datetime.datetime | None = None

    def usable(self, *, now: datetime.datetime, validity: datetime.timedelta) -> bool:
        return self.used_at is None and self.approved_at <= now <= self.approved_at + validity


@dataclasses.dataclass(frozen=True)
class GateState:
    """The remembered state relevant to one proposal, loaded by the store layer."""

    restrictions: Sequence[Restriction] = ()
    approvals: Sequence[Approval] = ()
    # Cooling periods started on the target per pattern inside the escalation window (24h by default).
    recent_cooling_periods: int = 0


_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def alert_name(*, pattern: PatternType, target: TargetRef | None, actor: str, scope: str) -> str:
    """The OscillationAlert's name: one alert per target and pattern (per actor for budgets).

    An actor's alert must be its own: an approval of it releases that actor's block, and
    ``remediation:agent`` and ``staging:agent`` are two agents. So the name carries the service
    account's namespace, and a digest of the whole username for the names that would still meet
    once spelled as a Kubernetes name (``a-b:c`` and ``a:b-c``, or case).
    """
    if spec_of(pattern).scope is Scope.ACTOR or target is None:
        raw = f"{_actor_words(actor)}-{pattern.value}" + ("-cluster" if scope == "cluster" else "")
        digest = hashlib.sha256(actor.encode()).hexdigest()[:8]
        return f"{dns_name(raw)[:244].rstrip('-')}-{digest}"
    return dns_name(f"{target.kind}-{target.name}-{pattern.value}")


def _actor_words(actor: str) -> str:
    """``agent-remediation`` for ``system:serviceaccount:remediation:agent``; people by username."""
    parts = actor.split(":")
    if len(parts) == 4 and actor.startswith("system:serviceaccount:"):
        return f"{parts[3]}-{parts[2]}"
    return actor


def dns_name(raw: str) -> str:
    """``raw`` as a Kubernetes object name: lower case, runs of other characters as one dash."""
    name = _DNS_UNSAFE.sub("-", raw.lower()).strip("-")
    return name[:253].rstrip("-")


def enforcement_for_person(enforcement: Enforcement) -> Enforcement:
    """People are warned, not refused (DESIGN §3); a dry-run policy stays dry-run."""
    return Enforcement.DRYRUN if enforcement is Enforcement.DRYRUN else Enforcement.WARN


def latest(events: Sequence[ActionEvent], *, replicas_only: bool = False) -> ActionEvent | None:
    for event in reversed(events):
        if not replicas_only or event.is_scale:
            return event
    return None
