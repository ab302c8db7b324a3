"""The store layer's one error hierarchy: what went wrong, in terms the gate decides on.

Driver exceptions (asyncpg, redis-py, sockets) are translated at the edge of ``webhook.store`` so
nothing above it has to know which builtin or driver exception means "the database is gone" and
which means "this row can never be stored" — the two call for opposite handling: the first is
retried from the outbox, the second would block the outbox for good if it were.
"""

from __future__ import annotations

import enum


class StoreError(Exception):
    """Base of every error the store layer raises on purpose."""


class PostgresUnavailable(StoreError):
    """PostgreSQL cannot answer now (down, unreachable, shutting down, out of connections)."""


class PostgresConflict(PostgresUnavailable):
    """PostgreSQL rolled the statement back (a deadlock, a serialization failure): it did not
    apply, and PostgreSQL is up. Handled like an outage for this one call — the write goes to the
    outbox, the read to the cache — but never a reason to take PostgreSQL for down: a deadlock with
    a partition's DDL once switched every following decision to the outbox until the next check."""


class CacheUnavailable(StoreError):
    """Redis cannot answer now."""


class StoresUnavailable(StoreError):
    """Neither PostgreSQL nor Redis can answer: there is nothing to decide from."""


class LockBusy(StoreError):
    """A decision lock stayed held by others past the wait budget. Not an outage: the stores
    answered; the request should be retried."""


class RowRefused(StoreError):
    """PostgreSQL answered and refused this data (a value out of a column's range, a NUL byte,
    a non-finite number). Retrying the same data fails forever."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class Locking(str, enum.Enum):
    """What ``HistoryStore.serialized`` could do about a decision's locks."""

    HELD = "held"          # every lock is held
    BUSY = "busy"          # held by others past the wait budget; going ahead without them
    NO_STORE = "no-store"  # no names, or no store to lock in (the decision then fails open or closed)


class Gap(str, enum.Enum):
    """Why a decision was taken without the full picture; the ``reason`` label of
    ``safety_gate_degraded_decisions_total``. Ordered from mildest to worst (see ``worst``)."""

    REDIS_DOWN = "redis-down"          # history from PostgreSQL alone: complete, locks in PostgreSQL
    POSTGRES_DOWN = "postgres-down"    # history from a warm cache plus the outbox: complete
    COLD_CACHE = "cold-cache"          # PostgreSQL down and the cache does not hold this window
    LOCK_BUSY = "lock-busy"            # the decision lock could not be had in time
    UNAVAILABLE = "unavailable"        # no store answered
    GATE_ERROR = "gate-error"          # the gate itself failed: answered unchecked, history never read

    @property
    def incomplete(self) -> bool:
        """Whether the history behind the decision may be missing events."""
        return self in (Gap.COLD_CACHE, Gap.UNAVAILABLE, Gap.GATE_ERROR)


_ORDER = list(Gap)


class StoreMode(str, enum.Enum):
    """Which stores the gate is deciding with now (``HistoryStore.mode``), as MCP's ``store.mode``
    says it. A mode other than healthy is also the gap each decision taken in it carries."""

    HEALTHY = "healthy"
    REDIS_DOWN = "redis-down"          # PostgreSQL alone
    POSTGRES_DOWN = "postgres-down"    # a warm cache plus the outbox
    COLD_CACHE = "cold-cache"          # PostgreSQL down, and Redis lost what it held
    UNAVAILABLE = "unavailable"        # neither

    @property
    def gap(self) -> Gap | None:
        """What a decision taken in this mode lacks: ``None`` when healthy."""
        return None if self is StoreMode.HEALTHY else Gap(self.value)


def worst(gaps: set[Gap] | frozenset[Gap]) -> Gap | None:
    return max(gaps, key=_ORDER.index) if gaps else None
