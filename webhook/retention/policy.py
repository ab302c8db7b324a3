"""The retention policy of one target and the little a planner needs to know about a trace.

Mirrors the seed's ``ActionHistory.spec.retentionPolicy`` (``maxActions``, ``maxAge``,
``compactionStrategy``), stored per target in ``action_histories``. Defaults follow DESIGN §7:
90 days, pattern-aware; ``maxActions`` follows the table's default (1000).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum


class Strategy(str, enum.Enum):
    OLDEST_FIRST = "oldest-first"
    EFFECTIVENESS_BASED = "effectiveness-based"
    PATTERN_AWARE = "pattern-aware"


DEFAULT_MAX_ACTIONS = 1000
DEFAULT_MAX_AGE = datetime.timedelta(days=90)
DEFAULT_STRATEGY = Strategy.PATTERN_AWARE


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionPolicy:
    max_actions: int = DEFAULT_MAX_ACTIONS
    max_age: datetime.timedelta = DEFAULT_MAX_AGE
    strategy: Strategy = DEFAULT_STRATEGY

    def __post_init__(self) -> None:
        if self.max_actions < 1:
            raise ValueError(f"maxActions must be at least 1, got {self.max_actions}")
        if self.max_age <= datetime.timedelta(0):
            raise ValueError(f"maxAge must be positive, got {self.max_age}")


@dataclasses.dataclass(frozen=True, slots=True)
class Trace:
    """One recorded action as retention sees it: identity, time, and why it might be worth keeping."""

    id: int
    at: datetime.datetime
    action_type: str = ""
    effectiveness: float | None = None
    is_pattern_example: bool = False
