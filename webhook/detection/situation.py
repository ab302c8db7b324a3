"""What a detector is given and what it returns. Both are plain immutable data: no I/O here."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence
from typing import ClassVar

from webhook.actions.model import ActionEvent, TargetRef
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy


class Severity(str, enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ("low", "medium", "high", "critical").index(self.value)


class Breadth(str, enum.Enum):
    TARGET = "target"        # the one target the finding is about
    NAMESPACE = "namespace"  # every target in one namespace (an actor's budget)
    CLUSTER = "cluster"      # every target anywhere (an actor's budget)


@dataclasses.dataclass(frozen=True, slots=True)
class Reach:
    """How far a finding reaches, and so what its restriction and alert are about.

    Most patterns are about one target; the cascading-failure budget counts an actor's changes
    in one namespace or across the cluster. Written ``target``, ``namespace/<ns>`` or ``cluster``
    (:meth:`parse`, ``str()``): the form of the explain/report JSON and of actor restriction scopes.
    A cluster-scoped target (a Node) has the namespace ``""``, so ``namespace/`` is a valid reach.
    """

    breadth: Breadth = Breadth.TARGET
    namespace: str = ""

    TARGET: ClassVar[Reach]
    CLUSTER: ClassVar[Reach]

    def __post_init__(self) -> None:
        if self.breadth is not Breadth.NAMESPACE and self.namespace:
            raise ValueError(f"a {self.breadth.value} reach has no namespace, got {self.namespace!r}")

    @classmethod
    def of_namespace(cls, namespace: str) -> Reach:
        return cls(Breadth.NAMESPACE, namespace)

    @classmethod
    def parse(cls, text: str) -> Reach:
        if text == Breadth.TARGET.value:
            return cls.TARGET
        if text == Breadth.CLUSTER.value:
            return cls.CLUSTER
        prefix = f"{Breadth.NAMESPACE.value}/"
        if text.startswith(prefix) and "/" not in text[len(prefix):]:
            return cls.of_namespace(text[len(prefix):])
        raise ValueError(f"not a reach (target, namespace/<ns> or cluster): {text!r}")

    def covers(self, target: TargetRef | None) -> bool:
        """Whether an actor's restriction of this reach covers a change to ``target``."""
        if self.breadth is Breadth.CLUSTER:
            return True
        if self.breadth is Breadth.NAMESPACE:
            return target is not None and target.namespace == self.namespace
        return False  # a target's restriction names its target itself (TargetScope)

    def __str__(self) -> str:
        if self.breadth is Breadth.NAMESPACE:
            return f"{Breadth.NAMESPACE.value}/{self.namespace}"
        return str(self.breadth.value)


Reach.TARGET = Reach(Breadth.TARGET)
Reach.CLUSTER = Reach(Breadth.CLUSTER)


@dataclasses.dataclass(frozen=True)
class Situation:
    """Everything known when one action is proposed.

    ``history`` holds the admitted events on the proposed target (every actor, oldest first,
    the proposed event not included). ``actor_history`` holds the proposing actor's admitted
    events on any target, oldest first, for budgets that span workloads. Both may reach further
    back than a pattern's window; detectors cut them to their own window.
    """

    proposed: ActionEvent
    now: datetime.datetime
    history: Sequence[ActionEvent] = ()
    actor_history: Sequence[ActionEvent] = ()
    # Events at or before these instants no longer count for the pattern: a cooling period
    # ended, so the pattern has to form again from new changes (DESIGN §4).
    resets: Mapping[PatternType, datetime.datetime] = dataclasses.field(default_factory=dict)
    # Mean recorded effectiveness per action type on this target, over its whole history.
    target_effectiveness: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def window(self, policy: PatternPolicy) -> list[ActionEvent]:
        """The target's history inside the policy's window and after the pattern's reset."""
        return self._cut(self.history, policy)

    def actor_window(self, policy: PatternPolicy) -> list[ActionEvent]:
        return self._cut(self.actor_history, policy)

    def _cut(self, events: Sequence[ActionEvent], policy: PatternPolicy) -> list[ActionEvent]:
        start = self.now - policy.window
        reset = self.resets.get(policy.pattern)
        return [
            event for event in events
            if event.at > start and (reset is None or event.at > reset)
        ]


@dataclasses.dataclass(frozen=True)
class Finding:
    """A pattern recognised in a situation (``triggered``), or one step short of it (a near miss).

    ``evidence`` lists the events that form the pattern, oldest first, the proposed one last.
    ``summary`` is the evidence in words, e.g. ``2 direction reversals in 41m (3→5→3→5)``.
    """

    pattern: PatternType
    policy: PatternPolicy
    triggered: bool
    severity: Severity
    confidence: float
    evidence: tuple[ActionEvent, ...]
    summary: str
    scope: Reach = Reach.TARGET        # cascading-failure: a namespace or the cluster
    counterpart: str | None = None     # controller-fight: the other actor
    alternative: str | None = None     # resource-thrashing: the suggested action type
