"""What a detector is given and what it returns. Both are plain immutable data: no I/O here."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence

from webhook.actions.model import ActionEvent
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
    scope: str = "target"              # cascading-failure: "namespace/NS" or "cluster"
    counterpart: str | None = None     # controller-fight: the other actor
    alternative: str | None = None     # resource-thrashing: the suggested action type
