"""PostgreSQL, the system of record: every admitted action, restriction, detection and decision."""

from __future__ import annotations

import datetime
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import asyncpg

from webhook.actions.model import ActionEvent, TargetRef
from webhook.decision.decide import AlertUpdate, Outcome
from webhook.decision.state import Approval, Restriction, RestrictionScope
from webhook.store.confirmation import ActionStatus, Operation, Proposed, Resolution, Subject
from webhook.store.effects import Effects
from webhook.store.errors import PostgresConflict, PostgresUnavailable, RowRefused, StoreError

#: The words of the check_violation (23514) an insert gets for a month with no partition; a CHECK
#: constraint's violation shares the SQLSTATE, so the message tells the two apart.
_PARTITION_MISSING = "no partition of relation"

# SQLSTATE classes that say "not now" rather than "not this data": connection exceptions,
# insufficient resources, operator intervention (shutdown), system errors, transaction
# rollbacks (serialization, deadlock), lock not available, internal errors.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX"})
_ROLLED_BACK = "40"  # of those, the ones where the server is fine and only the statement lost


_T = TypeVar("_T")


def postgres_error(exc: BaseException) -> StoreError | None:
    """The store error a driver exception stands for, or None when it is not a database matter (a bug).

    Anything the server refuses outside the transient classes is the row's fault: retrying it
    unchanged can only fail again, so it must never hold up the outbox.
    """
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate[:2] == _ROLLED_BACK:
            return PostgresConflict(f"{type(exc).__name__}: {exc}")
        if sqlstate[:2] in _TRANSIENT_CLASSES:
            return PostgresUnavailable(f"{type(exc).__name__}: {exc}")
        return RowRefused(f"{type(exc).__name__}: {exc}", sqlstate=sqlstate or None)
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError):
        return RowRefused(f"cannot encode for postgres: {exc}")  # asyncpg's client-side DataError
    if isinstance(exc, (UnicodeError, OverflowError)):
        return RowRefused(f"cannot encode for postgres: {exc}")
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # An idle pooled connection to a server that died, whose FATAL arrived before its EOF:
        # "another operation is in progress".
        return PostgresUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (OSError, TimeoutError, asyncpg.InterfaceError)):
        return PostgresUnavailable(f"{type(exc).__name__}: {exc}")
    return None


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


ADMISSION_COMMAND_TIMEOUT = 2.0


async def _keep_session(connection: asyncpg.Connection) -> None:
    """No reset query on release (see ``create_pool``)."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10,
                      command_timeout: float | None = ADMISSION_COMMAND_TIMEOUT,
                      reset_sessions: bool = True) -> asyncpg.Pool:
    """A pool for the gate's queries.

    The default command timeout is short: a stuck database must not hold an admission request
    past the API server's 3s webhook timeout; the gate falls back to the cache instead. Batch
    work (retention, summaries, aggregates) passes ``command_timeout=None``.

    ``reset_sessions=False`` skips asyncpg's reset query (advisory unlock all, RESET ALL, ...)
    each time a connection goes back to the pool — a round trip per query on the admission
    path. That is only safe where nothing leaves session state behind: the admission pool,
    whose advisory locks end their session when an unlock fails.
    """
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     command_timeout=command_timeout, timeout=2,
                                     reset=None if reset_sessions else _keep_session)


def _restriction_from_row(row: asyncpg.Record) -> Restriction:
    return Restriction.from_json({
        "pattern": row["pattern"], "strategy": row["strategy"], "scope": row["scope"],
        "applies": row["applies"], "started": row["started_at"].isoformat(),
        "until": row["until"].isoformat(), "alert": row["alert"], "evidence": row["evidence"],
        "target_key": row["target_key"],
    })


def _proposed_from_row(row: asyncpg.Record) -> Proposed:
    return Proposed(uid=row["request_uid"], at=row["proposed_at"], operation=Operation(row["operation"]),
                    subject=Subject(kind=row["subject_kind"], namespace=row["subject_namespace"],
                                    name=row["subject_name"]),
                    change=row["change"], actor=row["actor"], target_key=row["target_key"],
                    old_version=row["old_version"])


def _in_order(rows: Sequence[asyncpg.Record]) -> list[ActionEvent]:
    """Events oldest first, ties by id: the order detection reads history in."""
    ordered = sorted(rows, key=lambda row: (row["action_timestamp"], row["id"]))
    return [_event_from_row(row) for row in ordered]


def _event_from_row(row: asyncpg.Record) -> ActionEvent:
    event = ActionEvent.from_json(row["event"])
    return event.replace(effectiveness=row["effectiveness_score"], action_id=row["id"])


# Decision, reference, history and trace of a plain decision in one statement: each step
# selects from the one before, so nothing is written when the decision row already existed.
# The history's ``action_count`` (migration 0012) takes the trace in the same upsert: a replayed
# uid writes nothing, and a trace that still conflicts leaves the counter high, its safe side.
_WRITE_PLAIN = """
WITH decision AS (
    INSERT INTO admission_decisions (cluster_id, request_uid, decided_at, namespace, kind, name, action_type,
        actor, actor_class, outcome, allowed, code, pattern, strategy, message, warnings, degraded, latency_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    ON CONFLICT (cluster_id, request_uid) DO NOTHING
    RETURNING id
), reference AS (
    INSERT INTO resource_references (cluster_id, api_version, kind, namespace, name, last_seen)
    SELECT $1, $21, $5, $4, $6, $22 FROM decision WHERE $20
    ON CONFLICT (cluster_id, namespace, kind, name)
    DO UPDATE SET last_seen = GREATEST(resource_references.last_seen, EXCLUDED.last_seen)
    RETURNING id
), history AS (
    INSERT INTO action_histories (cluster_id, resource_id, total_actions, last_action_at, action_count)
    SELECT $1, id, 1, $22, CASE WHEN $19 THEN 1 ELSE 0 END FROM reference
    ON CONFLICT (resource_id) DO UPDATE SET total_actions = action_histories.total_actions + 1,
        action_count = action_histories.action_count + EXCLUDED.action_count,
        last_action_at = GREATEST(action_histories.last_action_at, EXCLUDED.last_action_at), updated_at = now()
    RETURNING id
), trace AS (
    INSERT INTO resource_action_traces (
        cluster_id, action_history_id, request_uid, correlation_id, action_timestamp, action_type,
        actor, actor_class, namespace, kind, name, object_kind, model_used, model_confidence,
        alert_name, replicas_before, replicas_after, bypass_reason, event)
    SELECT $1, (SELECT id FROM history), $2, $23, $22, $7, $8, $9, $4, $5, $6, $24, $25, $26, $27, $28, $29, $30, $31
    FROM decision WHERE $19
    ON CONFLICT (cluster_id, request_uid, action_timestamp) DO NOTHING
    RETURNING id
)
SELECT count(*) > 0 FROM decision
"""

# How a detection row takes a new occurrence or refusal: counts add up, the latest finding's words
# replace the old ones, a cooldown or an approval's use is kept until a newer one comes.
_DETECTION_COLUMNS = """cluster_id, alert_namespace, alert_name, pattern_type, namespace, kind, name, actor, severity,
    confidence, strategy, enforcement_action, phase, message, summary, alternative, evidence, occurrences,
    denied_requests, first_seen, last_seen, cooldown_until, approval_used_by, approval_used_at, warned_requests"""
_DETECTION_ON_CONFLICT = """ON CONFLICT (cluster_id, alert_namespace, alert_name) DO UPDATE SET
        severity = EXCLUDED.severity, confidence = EXCLUDED.confidence, strategy = EXCLUDED.strategy,
        enforcement_action = EXCLUDED.enforcement_action, phase = EXCLUDED.phase,
        message = EXCLUDED.message, summary = EXCLUDED.summary, alternative = EXCLUDED.alternative,
        actor = EXCLUDED.actor, evidence = EXCLUDED.evidence,
        occurrences = oscillation_detections.occurrences + EXCLUDED.occurrences,
        denied_requests = oscillation_detections.denied_requests + EXCLUDED.denied_requests,
        warned_requests = oscillation_detections.warned_requests + EXCLUDED.warned_requests,
        last_seen = EXCLUDED.last_seen,
        cooldown_until = COALESCE(EXCLUDED.cooldown_until, oscillation_detections.cooldown_until),
        approval_used_by = COALESCE(EXCLUDED.approval_used_by, oscillation_detections.approval_used_by),
        approval_used_at = COALESCE(EXCLUDED.approval_used_at, oscillation_detections.approval_used_at)"""

# Every other decision in one statement too (issue 15: "a refusal costs no more than an
# admission"): the plain CTE, plus the restriction it starts, the detection it upserts, the
# refusal it counts on an existing detection and the approval it uses. Each part is written only
# when its key parameter is not NULL, and only FROM decision, so a replay still changes nothing.
# Two parts may not touch one detection row in one statement (PostgreSQL would apply only one):
# ``PostgresStore._one_statement`` sends such rare bundles through a transaction instead.
_WRITE_DECISION = _WRITE_PLAIN.replace("SELECT count(*) > 0 FROM decision", "").rstrip() + f""",
restriction AS (
    INSERT INTO restrictions (cluster_id, scope, pattern, strategy, applies, started_at, until, alert,
                              evidence, target_key, evidence_uids)
    SELECT $1, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41 FROM decision WHERE $32::text IS NOT NULL
    RETURNING id
), detection AS (
    INSERT INTO oscillation_detections ({_DETECTION_COLUMNS})
    SELECT $1, $42, $43, $44, $45, $46, $47, $48, $49, $50, $51, $52, $53, $54, $55, $56, $57, $58, $59, $3, $3,
           $60, $61, CASE WHEN $61::text IS NULL THEN NULL ELSE $3::timestamptz END, $62
    FROM decision WHERE $42::text IS NOT NULL
    {_DETECTION_ON_CONFLICT}
    RETURNING id
), refusal AS (
    UPDATE oscillation_detections SET
        denied_requests = denied_requests + CASE WHEN $65 THEN 1 ELSE 0 END,
        warned_requests = warned_requests + CASE WHEN $65 THEN 0 ELSE 1 END,
        last_seen = $3
    WHERE cluster_id = $1 AND alert_namespace = $63 AND alert_name = $64 AND EXISTS (SELECT 1 FROM decision)
    RETURNING id
), approval AS (
    UPDATE oscillation_detections SET approval_used_at = $3, approval_used_by = $2
    WHERE cluster_id = $1 AND alert_namespace = $66 AND alert_name = $67 AND EXISTS (SELECT 1 FROM decision)
    RETURNING id
)
SELECT count(*) > 0 FROM decision
"""


def _alert_key(alert: str | None) -> tuple[str | None, str | None]:
    """An alert's "<namespace>/<name>" as the detection row's key columns (NULLs: no alert)."""
    if alert is None:
        return None, None
    namespace, name = alert.split("/", 1)
    return namespace, name


def _one_statement(effects: Effects) -> bool:
    """Whether ``_WRITE_DECISION`` can apply these effects: not when two of its parts would
    modify the same detection row (an escalation that uses an approval, say)."""
    rows = [key for key in (effects.alert and f"{effects.alert.namespace}/{effects.alert.name}",
                            effects.refusal_alert, effects.consume_alert) if key]
    return len(rows) == len(set(rows))


def _restriction_params(effects: Effects) -> list[Any]:
    """$32–$41: the restriction a decision starts (all NULL: none)."""
    if effects.restriction is None:
        return [None] * 10
    basis = [event.uid for event in effects.alert.evidence] if effects.alert is not None else []
    return _restriction_row(effects.restriction, basis=basis)


def _restriction_row(restriction: Restriction, *, basis: Sequence[str]) -> list[Any]:
    """A restriction's columns, scope to evidence_uids, as both writes of it store them."""
    return [str(restriction.scope), restriction.pattern.value, restriction.strategy.value, restriction.applies.value,
            restriction.started, restriction.until, restriction.alert, restriction.evidence, restriction.target_key,
            list(basis)]


def _detection_params(effects: Effects) -> list[Any]:
    """$42–$62: the detection a decision upserts (all NULL: none)."""
    if effects.alert is None:
        return [None] * 21
    return _detection_row(effects.alert, warned=effects.outcome == Outcome.WARN.value)


def _detection_row(update: AlertUpdate, *, warned: bool) -> list[Any]:
    """A detection's values in ``_DETECTION_COLUMNS`` order, less the cluster id and the times
    (first_seen, last_seen, approval_used_at), which each statement fills from its decision time."""
    target = update.target
    return [
        update.namespace, update.name, update.pattern.value,
        target.namespace if target else None, target.kind if target else None, target.name if target else None,
        update.actor, update.severity.value, update.confidence, update.strategy.value, update.enforcement.value,
        update.phase, update.message, update.summary, update.alternative,
        [event.evidence() for event in update.evidence],
        1 if update.new_occurrence else 0, 1 if update.denied else 0, update.cooldown_until, update.approval_used_by,
        1 if warned else 0,
    ]


def _refusal_params(effects: Effects) -> list[Any]:
    """$63–$65: an existing restriction's alert that counts this refusal (denied, or warned)."""
    return [*_alert_key(effects.refusal_alert), not effects.allowed]


#: The counting filter of truthful history (DESIGN §7): everything counts except actions marked
#: not-applied. A proposal counts while it waits; the confirmation watch marks it not-applied once
#: the window has passed unseen — so detection counts confirmed actions and young proposals. An old
#: proposal still waiting means the watch could not look (API server unreachable, kind not served):
#: it keeps counting, because a gate that cannot see the cluster must not forget what it admitted.
#:
#: Written as an anti-join on the partial index of not-applied actions (migration 0008), and with
#: no ORDER BY (the caller sorts): whatever the statistics say — a cached generic plan made while
#: the tables were empty, say — the only plan left is the index on the filter. A LEFT JOIN with an
#: ORDER BY let such a plan walk the cluster-wide page index and rescan action_status per row:
#: 6 ms and 5,800 blocks per cold read after two minutes, growing with the table (issue 15).
_COUNTS = ("NOT EXISTS (SELECT 1 FROM action_status s WHERE s.cluster_id = t.cluster_id"
           " AND s.request_uid = t.request_uid AND s.status = 'not-applied')")


class PostgresStore:
    """Typed queries over the schema in ``migrations/``. One instance per process; the pool is shared."""

    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    async def ping(self) -> None:
        async with self.pool.acquire(timeout=2) as connection:
            await connection.fetchval("SELECT 1")

    # --- actions ------------------------------------------------------------------------------

    async def record_action(self, event: ActionEvent) -> int | None:
        """Write an admitted action once (idempotent by request uid and time); return its id."""
        async def insert() -> int | None:
            async with self.pool.acquire() as connection:
                return await self._insert_action(connection, event)

        return await self._into_partition(event.at, insert)

    async def _into_partition(self, at: datetime.datetime, write: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``write``; if it hit a month with no partition, create the partition and run it once more.

        Partitions are made months ahead by the migrations and every retention run, so a decision's
        write issues no DDL (issue 15: the ``sg_ensure_partition`` each process called before its
        first write of a month took 1.0 s in the benchmarks, and when it created the partition it
        held ACCESS EXCLUSIVE on the parent in front of every decision). This is the fallback for the month nobody
        made: an outbox replay of an old action, or a database whose retention has not run for
        months. The failed statement changed nothing (one statement, or a rolled-back transaction),
        so running it again is safe.
        """
        try:
            return await write()
        except asyncpg.CheckViolationError as exc:
            if _PARTITION_MISSING not in str(exc):
                raise
        await self.pool.execute("SELECT sg_ensure_partition($1)", at)
        return await write()

    async def write_effects(self, effects: Effects) -> bool:
        """Apply one decision's effects in one transaction; False if they were applied before.

        The ``admission_decisions`` row, unique by request uid, is the idempotency key: a bundle
        replayed from the outbox or the spool after it already landed changes nothing.
        """
        if not effects.record:
            return await self._write_effects(effects)
        return await self._into_partition(effects.event.at, lambda: self._write_effects(effects))

    async def _write_effects(self, effects: Effects) -> bool:
        if effects.plain:
            return await self._write_plain(effects)
        if _one_statement(effects):
            return await self._write_decision(effects)
        async with self.pool.acquire() as connection, connection.transaction():
            if not await self._insert_decision(connection, effects):
                return False
            if effects.record:
                await self._insert_action(connection, effects.event)
            if effects.restriction is not None:
                basis = [event.uid for event in effects.alert.evidence] if effects.alert is not None else []
                await self._insert_restriction(connection, effects.restriction, basis=basis)
            if effects.alert is not None:
                await self._upsert_detection(connection, effects.alert, now=effects.decided_at,
                                             warned=effects.outcome == Outcome.WARN.value)
            if effects.refusal_alert is not None:
                await self._count_refusal(connection, effects.refusal_alert, now=effects.decided_at,
                                          denied=not effects.allowed)
            if effects.consume_alert is not None:
                await self._consume_approval(connection, effects.consume_alert, request_uid=effects.uid,
                                             at=effects.decided_at)
        return True

    async def _write_plain(self, effects: Effects) -> bool:
        """The common decision — no restriction, alert or approval — in one statement (one round
        trip, atomic on its own) instead of a transaction of eight. Everything hangs off the
        ``admission_decisions`` insert, so a replayed bundle changes nothing here either."""
        return bool(await self.pool.fetchval(_WRITE_PLAIN, *self._decision_params(effects)))

    async def _write_decision(self, effects: Effects) -> bool:
        """A decision with a restriction, a detection, a refusal or an approval: one statement as well."""
        params = [*self._decision_params(effects), *_restriction_params(effects), *_detection_params(effects),
                  *_refusal_params(effects), *_alert_key(effects.consume_alert)]
        return bool(await self.pool.fetchval(_WRITE_DECISION, *params))

    def _decision_params(self, effects: Effects) -> list[Any]:
        """$1–$31 of ``_WRITE_PLAIN`` (and of ``_WRITE_DECISION``)."""
        event, target = effects.event, effects.event.target
        record_target = effects.record and target is not None
        return [
            self.cluster_id, effects.uid, effects.decided_at,
            target.namespace if target else None, target.kind if target else None, target.name if target else None,
            event.action_type, event.actor, event.actor_class.value, effects.outcome, effects.allowed, effects.code,
            effects.pattern, effects.strategy, effects.message, list(effects.warnings), effects.degraded,
            effects.latency_ms, effects.record, record_target, target.api_version if target else "", event.at,
            event.correlation_id, event.object_kind, event.model_used, event.confidence, event.alert_name,
            event.replicas_before, event.replicas_after, event.bypass, event.to_json(),
        ]

    async def _insert_action(self, connection: asyncpg.Connection, event: ActionEvent) -> int | None:
        async with connection.transaction():  # a savepoint inside write_effects
            history_id = None
            if event.target is not None:
                history_id = await self._history_id(connection, event.target, event.at)
            action_id = await connection.fetchval(
                """
                INSERT INTO resource_action_traces (
                    cluster_id, action_history_id, request_uid, correlation_id, action_timestamp, action_type,
                    actor, actor_class, namespace, kind, name, object_kind, model_used, model_confidence,
                    alert_name, replicas_before, replicas_after, bypass_reason, event)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
                ON CONFLICT (cluster_id, request_uid, action_timestamp) DO NOTHING
                RETURNING id
                """,
                self.cluster_id, history_id, event.uid, event.correlation_id, event.at, event.action_type,
                event.actor, event.actor_class.value,
                event.target.namespace if event.target else None,
                event.target.kind if event.target else None,
                event.target.name if event.target else None,
                event.object_kind, event.model_used, event.confidence, event.alert_name,
                event.replicas_before, event.replicas_after, event.bypass, event.to_json(),
            )
            if action_id is None:
                return await connection.fetchval(
                    "SELECT id FROM resource_action_traces WHERE cluster_id = $1 AND request_uid = $2"
                    " AND action_timestamp = $3", self.cluster_id, event.uid, event.at)
            if history_id is not None:
                await connection.execute(
                    "UPDATE action_histories SET total_actions = total_actions + 1, action_count = action_count + 1,"
                    " last_action_at = GREATEST(last_action_at, $2), updated_at = now() WHERE id = $1",
                    history_id, event.at)
            return action_id

    async def _history_id(self, connection: asyncpg.Connection, target: TargetRef, at: datetime.datetime) -> int:
        resource_id = await connection.fetchval(
            """
            INSERT INTO resource_references (cluster_id, api_version, kind, namespace, name, last_seen)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (cluster_id, namespace, kind, name)
            DO UPDATE SET last_seen = GREATEST(resource_references.last_seen, EXCLUDED.last_seen)
            RETURNING id
            """,
            self.cluster_id, target.api_version, target.kind, target.namespace, target.name, at,
        )
        return await connection.fetchval(
            """
            INSERT INTO action_histories (cluster_id, resource_id) VALUES ($1, $2)
            ON CONFLICT (resource_id) DO UPDATE SET updated_at = action_histories.updated_at
            RETURNING id
            """,
            self.cluster_id, resource_id,
        )

    async def target_events(self, target: TargetRef, *, since: datetime.datetime,
                            until: datetime.datetime | None = None) -> list[ActionEvent]:
        rows = await self.pool.fetch(
            f"""
            SELECT t.id, t.event, t.effectiveness_score, t.action_timestamp FROM resource_action_traces t
            WHERE t.cluster_id = $1 AND t.namespace = $2 AND t.kind = $3 AND t.name = $4
              AND t.action_timestamp > $5 AND ($6::timestamptz IS NULL OR t.action_timestamp <= $6)
              AND {_COUNTS}
            """,
            self.cluster_id, target.namespace, target.kind, target.name, since, until,
        )
        return _in_order(rows)

    async def actor_events(self, actor: str, *, since: datetime.datetime) -> list[ActionEvent]:
        rows = await self.pool.fetch(
            f"""
            SELECT t.id, t.event, t.effectiveness_score, t.action_timestamp FROM resource_action_traces t
            WHERE t.cluster_id = $1 AND t.actor = $2 AND t.action_timestamp > $3
              AND {_COUNTS}
            """,
            self.cluster_id, actor, since,
        )
        return _in_order(rows)

    async def target_effectiveness(self, target: TargetRef) -> dict[str, float]:
        rows = await self.pool.fetch(
            """
            SELECT action_type, avg(effectiveness_score)::float8 AS mean FROM resource_action_traces
            WHERE cluster_id = $1 AND namespace = $2 AND kind = $3 AND name = $4
              AND effectiveness_score IS NOT NULL
            GROUP BY action_type
            """,
            self.cluster_id, target.namespace, target.kind, target.name,
        )
        return {row["action_type"]: row["mean"] for row in rows}

    # --- truthful history: proposals, confirmations, not-applied ---------------------------

    async def propose(self, proposed: Proposed) -> None:
        """Note that an admitted action waits for the cluster (idempotent by request uid)."""
        await self.pool.execute(
            """
            INSERT INTO action_status (cluster_id, request_uid, proposed_at, operation, subject_kind,
                subject_namespace, subject_name, old_version, change, target_key, actor)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (cluster_id, request_uid) DO NOTHING
            """,
            self.cluster_id, proposed.uid, proposed.at, proposed.operation.value, proposed.subject.kind,
            proposed.subject.namespace, proposed.subject.name, proposed.old_version, proposed.change,
            proposed.target_key, proposed.actor,
        )

    async def pending(self, *, kind: str, namespace: str, name: str) -> list[Proposed]:
        """Proposals still waiting on one object (or on a ``generateName`` prefix it matches), oldest first."""
        rows = await self.pool.fetch(
            """
            SELECT * FROM action_status
            WHERE cluster_id = $1 AND status = 'proposed' AND subject_kind = $2 AND subject_namespace = $3
              AND (subject_name = $4 OR (right(subject_name, 1) = '*'
                   AND starts_with($4, left(subject_name, -1))))
            ORDER BY proposed_at, request_uid
            """,
            self.cluster_id, kind, namespace, name)
        return [_proposed_from_row(row) for row in rows]

    async def expired_proposals(self, *, before: datetime.datetime, kinds: Sequence[str],
                                limit: int = 500) -> list[str]:
        """Proposals on these kinds still waiting since before ``before``, oldest first."""
        rows = await self.pool.fetch(
            "SELECT request_uid FROM action_status WHERE cluster_id = $1 AND status = 'proposed'"
            " AND proposed_at < $2 AND subject_kind = ANY($3::text[]) ORDER BY proposed_at LIMIT $4",
            self.cluster_id, before, list(kinds), limit)
        return [row["request_uid"] for row in rows]

    async def resolve(self, resolutions: Sequence[Resolution], *,
                      at: datetime.datetime) -> tuple[list[tuple[str | None, str]], int]:
        """Settle proposals still waiting (a settled one is never changed again). Returns the
        (target key, actor) of each action now not-applied, whose cached histories are stale, and
        how many restrictions were withdrawn because they were started on one of them."""
        stale: list[tuple[str | None, str]] = []
        withdrawn = 0
        if not resolutions:
            return stale, withdrawn
        async with self.pool.acquire() as connection, connection.transaction():
            not_applied: list[str] = []
            for resolution in resolutions:
                row = await connection.fetchrow(
                    """
                    UPDATE action_status SET status = $3, reason = $4, object_uid = $5, observed_version = $6,
                           resolved_at = $7
                    WHERE cluster_id = $1 AND request_uid = $2 AND status = 'proposed'
                      AND NOT ($3 = 'confirmed' AND operation = 'CREATE' AND EXISTS (
                          SELECT 1 FROM action_status c WHERE c.cluster_id = $1 AND c.object_uid = $5
                            AND c.operation = 'CREATE' AND c.status = 'confirmed'))
                    RETURNING target_key, actor
                    """,
                    self.cluster_id, resolution.uid, resolution.status.value, resolution.reason[:500],
                    resolution.object_uid, resolution.observed_version, at)
                if row is not None and resolution.status is ActionStatus.NOT_APPLIED:
                    not_applied.append(resolution.uid)
                    stale.append((row["target_key"], row["actor"]))
            if not_applied:
                status = await connection.execute(
                    "DELETE FROM restrictions WHERE cluster_id = $1 AND evidence_uids && $2::text[]",
                    self.cluster_id, not_applied)
                withdrawn = int(status.split()[-1])
        return stale, withdrawn

    async def timeline(self, target: TargetRef, *, since: datetime.datetime) -> list[tuple[ActionEvent, ActionStatus]]:
        """Every recorded action on a target, not-applied ones included, each with its status:
        what people read (``safety-gate history``), not what detection counts."""
        rows = await self.pool.fetch(
            """
            SELECT t.id, t.event, t.effectiveness_score, s.status FROM resource_action_traces t
            LEFT JOIN action_status s ON s.cluster_id = t.cluster_id AND s.request_uid = t.request_uid
            WHERE t.cluster_id = $1 AND t.namespace = $2 AND t.kind = $3 AND t.name = $4 AND t.action_timestamp > $5
            ORDER BY t.action_timestamp, t.id
            """,
            self.cluster_id, target.namespace, target.kind, target.name, since)
        return [(_event_from_row(row), ActionStatus(row["status"] or ActionStatus.RECORDED.value)) for row in rows]

    async def statuses(self, uids: Sequence[str]) -> dict[str, ActionStatus]:
        """Each action's status; an action without a row was recorded with nothing to confirm it."""
        rows = await self.pool.fetch(
            "SELECT request_uid, status FROM action_status WHERE cluster_id = $1 AND request_uid = ANY($2::text[])",
            self.cluster_id, list(uids))
        found = {row["request_uid"]: ActionStatus(row["status"]) for row in rows}
        return {uid: found.get(uid, ActionStatus.RECORDED) for uid in uids}

    # --- restrictions -------------------------------------------------------------------------

    async def _insert_restriction(self, connection: asyncpg.Connection, restriction: Restriction, *,
                                  basis: Sequence[str] = ()) -> None:
        await connection.execute(
            """
            INSERT INTO restrictions (cluster_id, scope, pattern, strategy, applies, started_at, until, alert,
                                      evidence, target_key, evidence_uids)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            """,
            self.cluster_id, *_restriction_row(restriction, basis=basis),
        )

    async def restrictions_since(self, since: datetime.datetime) -> list[Restriction]:
        """Every restriction that ended after ``since``: what the Redis mirror must hold."""
        rows = await self.pool.fetch(
            "SELECT scope, pattern, strategy, applies, started_at, until, alert, evidence, target_key FROM restrictions"
            " WHERE cluster_id = $1 AND until > $2 ORDER BY created_at", self.cluster_id, since)
        return [_restriction_from_row(row) for row in rows]

    async def restrictions(self, *, scopes: Sequence[RestrictionScope], actor: str | None,
                           since: datetime.datetime) -> list[Restriction]:
        """Restrictions on these scopes, or on the actor in any scope, that ended after ``since``."""
        rows = await self.pool.fetch(
            """
            SELECT scope, pattern, strategy, applies, started_at, until, alert, evidence, target_key, created_at
            FROM restrictions
            WHERE cluster_id = $1 AND until > $2
              AND (scope = ANY($3::text[]) OR ($4::text IS NOT NULL AND scope LIKE 'actor/' || $4 || '/%'))
            ORDER BY created_at
            """,
            self.cluster_id, since, [str(scope) for scope in scopes], actor,
        )
        return [_restriction_from_row(row) for row in rows]

    # --- detections and approvals -------------------------------------------------------------

    async def _upsert_detection(self, connection: asyncpg.Connection, update: AlertUpdate, *,
                                now: datetime.datetime, warned: bool = False) -> None:
        await connection.execute(
            f"""
            INSERT INTO oscillation_detections ({_DETECTION_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                    $18, $19, $23, $23, $20, $21, CASE WHEN $21::text IS NULL THEN NULL ELSE $23::timestamptz END,
                    $22)
            {_DETECTION_ON_CONFLICT}
            """,
            self.cluster_id, *_detection_row(update, warned=warned), now,
        )

    async def _count_refusal(self, connection: asyncpg.Connection, alert: str, *, now: datetime.datetime,
                             denied: bool = True) -> None:
        """A request met an existing restriction: refused (denied), or a person's change admitted
        with the refusal as a warning (warned) — counted apart, as the OscillationAlert counts them."""
        namespace, name = alert.split("/", 1)
        column = "denied_requests" if denied else "warned_requests"
        await connection.execute(
            f"UPDATE oscillation_detections SET {column} = {column} + 1, last_seen = $4"
            " WHERE cluster_id = $1 AND alert_namespace = $2 AND alert_name = $3",
            self.cluster_id, namespace, name, now)

    async def detections(self, *, namespace: str | None = None) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM oscillation_detections WHERE cluster_id = $1 AND ($2::text IS NULL OR alert_namespace = $2)"
            " ORDER BY last_seen DESC", self.cluster_id, namespace)
        return [dict(row) for row in rows]

    async def approvals(self, alerts: Iterable[str]) -> list[Approval]:
        """Approvals of these alerts, by the detections' unique key: one index probe per alert.
        (Matching ``namespace || '/' || name`` instead scanned every detection, on every
        escalation: 10 ms and growing with the table, issue 15.)"""
        keys = [_alert_key(alert) for alert in alerts]
        rows = await self.pool.fetch(
            """
            SELECT d.alert_namespace || '/' || d.alert_name AS alert, d.approved_by, d.approval_reason,
                   d.approved_at, d.approval_used_at
            FROM unnest($2::text[], $3::text[]) AS k (namespace, name)
            JOIN oscillation_detections d
              ON d.cluster_id = $1 AND d.alert_namespace = k.namespace AND d.alert_name = k.name
            WHERE d.approved_at IS NOT NULL
            """,
            self.cluster_id, [namespace for namespace, _ in keys], [name for _, name in keys],
        )
        return [
            Approval(alert=row["alert"], approved_by=row["approved_by"], reason=row["approval_reason"] or "",
                     approved_at=row["approved_at"],
                     used_at=row["approval_used_at"] if row["approval_used_at"] and row["approval_used_at"] >= row["approved_at"] else None)
            for row in rows
        ]

    async def approve(self, alert: str, *, approved_by: str, reason: str, at: datetime.datetime) -> bool:
        """Record a person's approval; False when no such detection exists or a newer approval is stored.

        Only a newer approval re-arms: two replicas syncing the same approval from the cluster, or
        a replayed watch event, can never reset an approval that was already used.
        """
        namespace, name = alert.split("/", 1)
        status = await self.pool.execute(
            """
            UPDATE oscillation_detections SET approved_by = $4, approval_reason = $5, approved_at = $6,
                   approval_used_at = NULL, approval_used_by = NULL, phase = 'Approved'
            WHERE cluster_id = $1 AND alert_namespace = $2 AND alert_name = $3
              AND (approved_at IS NULL OR approved_at < $6)
            """,
            self.cluster_id, namespace, name, approved_by, reason, at,
        )
        return status.endswith(" 1")

    async def _consume_approval(self, connection: asyncpg.Connection, alert: str, *, request_uid: str,
                                at: datetime.datetime) -> None:
        namespace, name = alert.split("/", 1)
        await connection.execute(
            "UPDATE oscillation_detections SET approval_used_at = $4, approval_used_by = $5"
            " WHERE cluster_id = $1 AND alert_namespace = $2 AND alert_name = $3",
            self.cluster_id, namespace, name, at, request_uid)

    # --- decisions ----------------------------------------------------------------------------

    async def _insert_decision(self, connection: asyncpg.Connection, effects: Effects) -> bool:
        inserted = await connection.fetchval(
            """
            INSERT INTO admission_decisions (cluster_id, request_uid, decided_at, namespace, kind, name, action_type,
                actor, actor_class, outcome, allowed, code, pattern, strategy, message, warnings, degraded, latency_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
            ON CONFLICT (cluster_id, request_uid) DO NOTHING
            RETURNING id
            """,
            *self._decision_params(effects)[:18],  # the decision's own columns, as the one-statement write
        )
        return inserted is not None

    # --- dead letters -------------------------------------------------------------------------

    async def insert_dead_letter(self, *, request_uid: str, reason: str, sqlstate: str | None, resolution: str,
                                 payload: str, decided_at: datetime.datetime | None) -> bool:
        """Keep a bundle PostgreSQL refused; False when this request's is already kept (a replay)."""
        inserted = await self.pool.fetchval(
            """
            INSERT INTO dead_letters (cluster_id, request_uid, reason, sqlstate, resolution, payload, decided_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (cluster_id, request_uid) DO NOTHING
            RETURNING id
            """,
            self.cluster_id, request_uid, reason, sqlstate, resolution, payload, decided_at,
        )
        return inserted is not None

    async def dead_letters(self, *, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, request_uid, reason, sqlstate, resolution, payload, decided_at, created_at FROM dead_letters"
            " WHERE cluster_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", self.cluster_id, limit)
        return [dict(row) for row in rows]
