"""Admission slots: how many reviews one replica decides at once, in total and per actor.

A queue only grows once the gate is behind: every waiting review ages towards the API server's
3 s timeout, the stores' timeouts fire, and the gate stops answering anything in time. So beyond
``maxInFlight`` reviews at once — or ``maxInFlightPerActor`` of one actor, so that one runaway
agent cannot take every slot from the others — a review is answered at once instead of waiting.
What that answer is depends on who asks (DESIGN §7); see :mod:`webhook.server.validate`.
"""

from __future__ import annotations

import collections
import contextlib
import enum
from collections.abc import Iterator


class Overload(str, enum.Enum):
    """Which limit a review ran into; the ``reason`` label of the overload metric."""

    REPLICA = "max-in-flight"
    ACTOR = "max-in-flight-per-actor"


class Slots:
    """In-flight counters of one replica. Single-threaded (one event loop): no locking needed."""

    def __init__(self, *, limit: int, per_actor: int) -> None:
        self.limit = limit          # 0: no limit
        self.per_actor = per_actor  # 0: no limit
        self.in_flight = 0
        self._by_actor: collections.Counter[str] = collections.Counter()

    def full(self, actor: str) -> Overload | None:
        """The limit a new review by ``actor`` would exceed, or None if it may be decided now."""
        if self.limit and self.in_flight >= self.limit:
            return Overload.REPLICA
        if self.per_actor and self._by_actor[actor] >= self.per_actor:
            return Overload.ACTOR
        return None

    def of(self, actor: str) -> int:
        return self._by_actor[actor]

    @contextlib.contextmanager
    def taken(self, actor: str) -> Iterator[None]:
        """Hold one slot (and one of ``actor``'s) while the block runs."""
        self.in_flight += 1
        self._by_actor[actor] += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._by_actor[actor] -= 1
            if not self._by_actor[actor]:
                del self._by_actor[actor]  # bounded by the actors in flight, not every actor ever seen
