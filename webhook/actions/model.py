"""Targets, changes and the recorded action event.

An ``ActionEvent`` is one admitted (or proposed) change to one target. Everything the
detectors need is on it, already normalised: replica counts as ints, resource quantities
as floats, times as aware UTC datetimes. Detectors never see raw Kubernetes objects.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any


def rfc3339(moment: datetime.datetime) -> str:
    """The one time format people and Kubernetes read: UTC, whole seconds, ``Z``."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ActorClass(str, enum.Enum):
    """How a requester is treated (DESIGN §3)."""

    OBSERVED = "observed"      # recorded, never denied (HPA, KEDA, system:masters)
    AUTOMATION = "automation"  # service accounts: enforced
    PERSON = "person"          # everyone else: allowed with warnings


@dataclasses.dataclass(frozen=True, slots=True)
class TargetRef:
    """The workload an action is aimed at. ``key`` is unique within one cluster.

    A cluster-scoped target (a Node) has no namespace (``""``); its alerts and summaries live in
    the gate's own namespace (:meth:`home`).
    """

    namespace: str
    kind: str
    name: str
    api_version: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"

    @property
    def display(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    @property
    def cluster_scoped(self) -> bool:
        return not self.namespace

    def home(self, cluster_namespace: str) -> str:
        """The namespace of this target's OscillationAlerts: its own, or for a cluster-scoped one the gate's."""
        return self.namespace or cluster_namespace

    @classmethod
    def parse(cls, text: str, *, separator: str = "/") -> TargetRef | None:
        """Parse ``namespace/Kind/name`` (Kubernaut's TARGET_RESOURCE form), or ``Kind/name`` for a
        cluster-scoped target (``Node/worker-1``, Kubernaut's ``node/worker-1``); None if malformed."""
        parts = [part.strip() for part in text.strip().split(separator)]
        if len(parts) == 2 and all(parts):
            kind, name = parts
            return cls(namespace="", kind=kind, name=name)
        if len(parts) != 3 or not all(parts):
            return None
        namespace, kind, name = parts
        return cls(namespace=namespace, kind=kind, name=name)


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceChange:
    """One container's cpu or memory request or limit moving from one value to another."""

    container: str
    resource: str          # "cpu" | "memory"
    field: str             # "requests" | "limits"
    before: float | None
    after: float | None
    before_text: str | None = None
    after_text: str | None = None

    @property
    def dimension(self) -> str:
        """What must move consistently for a change to count as a direction: container+resource+field."""
        return f"{self.container}/{self.resource}/{self.field}"

    @property
    def direction(self) -> int:
        if self.before is None or self.after is None or self.before == self.after:
            return 0
        return 1 if self.after > self.before else -1

    def describe(self) -> str:
        return f"{self.container} {self.resource} {self.field[:-1]} {self.before_text or '-'}→{self.after_text or '-'}"


@dataclasses.dataclass(frozen=True, slots=True)
class ImageChange:
    container: str
    before: str | None
    after: str | None


def flat(value: Any) -> dict[str, Any]:
    """A dataclass of plain fields (str, number, None) as a dict: ``dataclasses.asdict`` without its
    recursive deep copy, which was a measurable part of a decision's CPU (issue 15)."""
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


@dataclasses.dataclass(frozen=True, slots=True)
class ActionEvent:
    """One change to one target by one actor at one time: the unit of history."""

    uid: str
    at: datetime.datetime
    target: TargetRef | None
    action_type: str
    actor: str
    actor_class: ActorClass
    replicas_before: int | None = None
    replicas_after: int | None = None
    resource_changes: tuple[ResourceChange, ...] = ()
    image_changes: tuple[ImageChange, ...] = ()
    alert_name: str | None = None
    correlation_id: str | None = None
    model_used: str | None = None
    confidence: float | None = None
    effectiveness: float | None = None
    bypass: str | None = None
    object_kind: str = ""   # the kind of the admitted object: Deployment, Scale, PipelineRun, ...
    action_id: int | None = None  # the database id once recorded
    # The remediation this action carries out, when the agent names one: Kubernaut's workflow id.
    # Its repetition on one target shows the earlier run did not fix what it was for.
    remediation: str | None = None
    # A Node's ``spec.unschedulable`` after a ``drain_node`` change: True cordoned it, False uncordoned.
    unschedulable: bool | None = None

    @property
    def schedulability_direction(self) -> int:
        """+1 for a cordon, -1 for an uncordon, 0 for anything else."""
        return 0 if self.unschedulable is None else (1 if self.unschedulable else -1)

    @property
    def is_scale(self) -> bool:
        return (
            self.replicas_before is not None
            and self.replicas_after is not None
            and self.replicas_before != self.replicas_after
        )

    @property
    def replica_direction(self) -> int:
        if not self.is_scale:
            return 0
        assert self.replicas_before is not None and self.replicas_after is not None
        return 1 if self.replicas_after > self.replicas_before else -1

    @property
    def is_resource_change(self) -> bool:
        return any(change.direction for change in self.resource_changes)

    def summary(self) -> str:
        """A short human description used in evidence: ``replicas 3→5``, ``app memory limit 64Mi→128Mi``."""
        if self.is_scale:
            return f"replicas {self.replicas_before}→{self.replicas_after}"
        moved = [change.describe() for change in self.resource_changes if change.direction]
        if moved:
            return ", ".join(moved)
        if self.unschedulable is not None:
            return "cordon" if self.unschedulable else "uncordon"
        return self.action_type

    def evidence(self) -> dict[str, Any]:
        """This event as one line of an alert's evidence (the OscillationAlert CRD's field names)."""
        return {"timestamp": rfc3339(self.at), "actionType": self.action_type, "actor": self.actor,
                "summary": self.summary(), "requestUid": self.uid}

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "at": self.at.isoformat(),
            "target": flat(self.target) if self.target else None,
            "action_type": self.action_type,
            "actor": self.actor,
            "actor_class": self.actor_class.value,
            "replicas_before": self.replicas_before,
            "replicas_after": self.replicas_after,
            "resource_changes": [flat(change) for change in self.resource_changes],
            "image_changes": [flat(change) for change in self.image_changes],
            "alert_name": self.alert_name,
            "correlation_id": self.correlation_id,
            "model_used": self.model_used,
            "confidence": self.confidence,
            "effectiveness": self.effectiveness,
            "bypass": self.bypass,
            "object_kind": self.object_kind,
            "action_id": self.action_id,
            "remediation": self.remediation,
            "unschedulable": self.unschedulable,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionEvent:
        target = data.get("target")
        return cls(
            uid=data["uid"],
            at=datetime.datetime.fromisoformat(data["at"]),
            target=TargetRef(**target) if target else None,
            action_type=data["action_type"],
            actor=data["actor"],
            actor_class=ActorClass(data["actor_class"]),
            replicas_before=data.get("replicas_before"),
            replicas_after=data.get("replicas_after"),
            resource_changes=tuple(ResourceChange(**c) for c in data.get("resource_changes") or ()),
            image_changes=tuple(ImageChange(**c) for c in data.get("image_changes") or ()),
            alert_name=data.get("alert_name"),
            correlation_id=data.get("correlation_id"),
            model_used=data.get("model_used"),
            confidence=data.get("confidence"),
            effectiveness=data.get("effectiveness"),
            bypass=data.get("bypass"),
            object_kind=data.get("object_kind", ""),
            action_id=data.get("action_id"),
            remediation=data.get("remediation"),
            unschedulable=data.get("unschedulable"),
        )

    def replace(self, **changes: Any) -> ActionEvent:
        return dataclasses.replace(self, **changes)
