"""What the gate remembers between requests, as seen by the pure decision: restrictions in force
(cooling periods and blocks) and approvals of escalations."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from webhook.actions.model import ActionEvent, TargetRef
from webhook.detection.registry import Applies, Scope, changes_replicas, spec_of
from webhook.detection.situation import Breadth, Reach
from webhook.policy.model import Enforcement, PatternType, Strategy
from webhook.policy.resolved import PatternPolicy

__all__ = ["ActorScope", "Applies", "Approval", "GateState", "Restriction", "RestrictionScope", "TargetScope",
           "alert_name", "changes_replicas", "dns_name", "parse_scope"]


@dataclasses.dataclass(frozen=True, slots=True)
class TargetScope:
    """A restriction on one target, whoever changes it: ``target/<ns>/<Kind>/<name>``."""

    key: str  # the target's TargetRef.key

    PREFIX: ClassVar[str] = "target/"

    @classmethod
    def of(cls, target: TargetRef) -> TargetScope:
        return cls(target.key)

    def covers(self, event: ActionEvent) -> bool:
        return event.target is not None and event.target.key == self.key

    def __str__(self) -> str:
        return f"{self.PREFIX}{self.key}"


@dataclasses.dataclass(frozen=True, slots=True)
class ActorScope:
    """A restriction on one actor's changes within a namespace or the cluster (a budget):
    ``actor/<actor>/namespace/<ns>`` or ``actor/<actor>/cluster``."""

    actor: str
    reach: Reach

    PREFIX: ClassVar[str] = "actor/"

    def __post_init__(self) -> None:
        if self.reach.breadth is Breadth.TARGET:
            raise ValueError("an actor's restriction reaches a namespace or the cluster, not a target")

    def covers(self, event: ActionEvent) -> bool:
        return event.actor == self.actor and self.reach.covers(event.target)

    def __str__(self) -> str:
        return f"{self.PREFIX}{self.actor}/{self.reach}"


RestrictionScope = TargetScope | ActorScope


def parse_scope(text: str) -> RestrictionScope:
    """A restriction's scope from its stored form (the ``restrictions.scope`` column, the Redis
    mirror); ValueError if it is neither form. An actor's name may hold ``/``: the reach is
    taken from the end."""
    if text.startswith(TargetScope.PREFIX) and len(text) > len(TargetScope.PREFIX):
        return TargetScope(text[len(TargetScope.PREFIX):])
    if text.startswith(ActorScope.PREFIX):
        body = text[len(ActorScope.PREFIX):]
        cluster = f"/{Reach.CLUSTER}"
        if body.endswith(cluster) and len(body) > len(cluster):
            return ActorScope(body[: -len(cluster)], Reach.CLUSTER)
        actor, found, namespace = body.rpartition(f"/{Breadth.NAMESPACE.value}/")
        if found and actor and "/" not in namespace:
            return ActorScope(actor, Reach.of_namespace(namespace))
    raise ValueError(f"not a restriction scope (target/<ns>/<Kind>/<name> or actor/<actor>/<reach>): {text!r}")


@dataclasses.dataclass(frozen=True)
class Restriction:
    """A cooling period or block in force on a target, or on an actor within a scope."""

    pattern: PatternType
    strategy: Strategy
    scope: RestrictionScope
    applies: Applies        # which changes it refuses, from the pattern's spec
    started: datetime.datetime
    until: datetime.datetime
    alert: str              # "<namespace>/<name>" of the OscillationAlert
    evidence: str           # the finding's summary, repeated in every refusal
    target_key: str | None = None

    def refuses(self, event: ActionEvent, *, now: datetime.datetime) -> bool:
        return self.until > now and self.applies.covers(event) and self.scope.covers(event)

    @property
    def reach(self) -> Reach:
        """What the restriction is about, as a finding's scope: its target, or the actor's reach."""
        return self.scope.reach if isinstance(self.scope, ActorScope) else Reach.TARGET

    def to_json(self) -> dict[str, object]:
        return {
            "pattern": self.pattern.value, "strategy": self.strategy.value, "scope": str(self.scope),
            "applies": self.applies.value, "started": self.started.isoformat(), "until": self.until.isoformat(),
            "alert": self.alert, "evidence": self.evidence, "target_key": self.target_key,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Restriction:
        return cls(
            pattern=PatternType(data["pattern"]), strategy=Strategy(data["strategy"]),
            scope=parse_scope(str(data["scope"])),
            applies=Applies(str(data["applies"])), started=datetime.datetime.fromisoformat(str(data["started"])),
            until=datetime.datetime.fromisoformat(str(data["until"])), alert=str(data["alert"]),
            evidence=str(data["evidence"]), target_key=str(data["target_key"]) if data.get("target_key") else None,
        )


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
    # Per pattern, the cooling periods it started on the target inside its own policy's
    # escalateWindow (24h by default): the next one may escalate instead (escalateAfter).
    recent_cooling_periods: Mapping[PatternType, int] = dataclasses.field(default_factory=dict)

    def cooling_periods(self, pattern: PatternType) -> int:
        return self.recent_cooling_periods.get(pattern, 0)

    @classmethod
    def remembered(cls, restrictions: Iterable[Restriction], *, policies: Mapping[PatternType, PatternPolicy],
                   target: TargetRef, now: datetime.datetime) -> GateState:
        """The restrictions still in force, and per pattern the cooling periods it started on this
        target within its own policy's ``escalateWindow``: a pattern escalates on its own
        repetitions, never on another pattern's. ``restrictions`` are what the store remembers
        (ended ones included), which bounds how far back a long window can count."""
        restrictions = list(restrictions)
        scope = TargetScope.of(target)
        recent: dict[PatternType, int] = {}
        for pattern, policy in policies.items():
            since = now - policy.duration("escalateWindow", "24h")
            count = sum(1 for r in restrictions if r.pattern is pattern and r.strategy is Strategy.COOLING_PERIOD
                        and r.scope == scope and r.started > since)
            if count:
                recent[pattern] = count
        return cls(restrictions=[r for r in restrictions if r.until > now], recent_cooling_periods=recent)


_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def alert_name(*, pattern: PatternType, target: TargetRef | None, actor: str, scope: Reach) -> str:
    """The OscillationAlert's name: one alert per target and pattern (per actor for budgets).

    An actor's alert must be its own: an approval of it releases that actor's block, and
    ``remediation:agent`` and ``staging:agent`` are two agents. So the name carries the service
    account's namespace, and a digest of the whole username for the names that would still meet
    once spelled as a Kubernetes name (``a-b:c`` and ``a:b-c``, or case).
    """
    if spec_of(pattern).scope is Scope.ACTOR or target is None:
        raw = f"{_actor_words(actor)}-{pattern.value}" + ("-cluster" if scope.breadth is Breadth.CLUSTER else "")
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
