"""The SQL of the summaries (``webhook.summaries`` says what they say): which targets changed, what to say about them, and the leader lock.

"Changed" is read from PostgreSQL, never from process memory, so a replica that takes over the
lead carries on where the last one stopped: a target changed when an action on it was recorded
(``action_histories.updated_at``), one of its actions was assessed, a pattern was detected on it,
or a cooling period or block on it began or ended. Changes are visited in (time, target key)
order behind a durable cursor (``summary_cursors``), ``limit`` at a time.

Only changes older than ``settle`` are visited: a row's time is taken when its transaction
starts, so a change could commit just after a pass read past its time. Waiting a few seconds
beyond the longest write transaction makes such a change impossible to skip.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence

import asyncpg

from webhook.actions.model import TargetRef
from webhook.store.effectiveness import as_score

SCORE_PERIOD = datetime.timedelta(days=30)
RECENT = datetime.timedelta(hours=24)


@dataclasses.dataclass(frozen=True, slots=True)
class DetectedPattern:
    """One pattern detected on the target: its OscillationAlert's record in PostgreSQL."""

    pattern_type: str
    severity: str
    occurrences: int
    last_seen: datetime.datetime
    confidence: float
    alert: str  # namespace/name of the OscillationAlert


@dataclasses.dataclass(frozen=True, slots=True)
class ScoredSample:
    at: datetime.datetime
    action_type: str
    score: float


@dataclasses.dataclass(frozen=True, slots=True)
class ActiveRestriction:
    pattern: str
    strategy: str  # cooling-period | block-action
    until: datetime.datetime
    alert: str


@dataclasses.dataclass(frozen=True, slots=True)
class TargetFacts:
    """Everything a summary says about one target, as read in one pass."""

    target: TargetRef
    total_actions: int
    last_action_at: datetime.datetime | None
    recent: Mapping[str, int] = dataclasses.field(default_factory=dict)  # action type → count in the last 24h
    patterns: Sequence[DetectedPattern] = ()
    scores: Sequence[ScoredSample] = ()
    restriction: ActiveRestriction | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    """Every change before ``at``, and those at ``at`` up to ``key`` (all of them when None), is done."""

    at: datetime.datetime
    key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    target: TargetRef
    at: datetime.datetime

    @property
    def cursor(self) -> Cursor:
        return Cursor(at=self.at, key=self.target.key)


_CHANGED = """
WITH changes(namespace, kind, name, at) AS (
    SELECT r.namespace, r.kind, r.name, h.updated_at
    FROM action_histories h JOIN resource_references r ON r.id = h.resource_id
    WHERE h.cluster_id = $1 AND h.updated_at >= $2 AND h.updated_at <= $3
  UNION ALL
    SELECT namespace, kind, name, effectiveness_assessed_at FROM resource_action_traces
    WHERE cluster_id = $1 AND effectiveness_assessed_at >= $2 AND effectiveness_assessed_at <= $3
      AND namespace IS NOT NULL AND kind IS NOT NULL AND name IS NOT NULL
  UNION ALL
    SELECT namespace, kind, name, last_seen FROM oscillation_detections
    WHERE cluster_id = $1 AND last_seen >= $2 AND last_seen <= $3
      AND namespace IS NOT NULL AND kind IS NOT NULL AND name IS NOT NULL
  UNION ALL  -- an action leaving the "last 24 hours" changes the summary too
    SELECT namespace, kind, name, action_timestamp + interval '24 hours' FROM resource_action_traces
    WHERE cluster_id = $1 AND action_timestamp >= $2 - interval '24 hours'
      AND action_timestamp <= $3 - interval '24 hours'
      AND namespace IS NOT NULL AND kind IS NOT NULL AND name IS NOT NULL
  UNION ALL
    SELECT split_part(scope, '/', 2), split_part(scope, '/', 3), split_part(scope, '/', 4), created_at
    FROM restrictions
    WHERE cluster_id = $1 AND scope LIKE 'target/%' AND created_at >= $2 AND created_at <= $3
  UNION ALL
    SELECT split_part(scope, '/', 2), split_part(scope, '/', 3), split_part(scope, '/', 4), until
    FROM restrictions
    WHERE cluster_id = $1 AND scope LIKE 'target/%' AND until >= $2 AND until <= $3
), latest AS (
    SELECT namespace, kind, name, max(at) AS changed_at,
           (namespace || '/' || kind || '/' || name) COLLATE "C" AS key
    FROM changes GROUP BY namespace, kind, name
)
SELECT namespace, kind, name, changed_at, key FROM latest
WHERE changed_at > $2 OR ($4::text IS NOT NULL AND changed_at = $2 AND key > $4::text COLLATE "C")
ORDER BY changed_at, key
LIMIT $5
"""

_TARGETS = "unnest($2::text[], $3::text[], $4::text[])"


class SummaryRepository:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    async def database_now(self) -> datetime.datetime:
        """PostgreSQL's clock: the one every change time in the query is written with."""
        return await self.pool.fetchval("SELECT now()")

    async def cursor(self) -> Cursor | None:
        row = await self.pool.fetchrow(
            "SELECT changed_at, target_key FROM summary_cursors WHERE cluster_id = $1", self.cluster_id)
        return Cursor(at=row["changed_at"], key=row["target_key"]) if row else None

    async def save_cursor(self, cursor: Cursor) -> None:
        await self.pool.execute(
            """
            INSERT INTO summary_cursors (cluster_id, changed_at, target_key) VALUES ($1, $2, $3)
            ON CONFLICT (cluster_id) DO UPDATE SET changed_at = EXCLUDED.changed_at,
                target_key = EXCLUDED.target_key, updated_at = now()
            """,
            self.cluster_id, cursor.at, cursor.key)

    async def first_cursor(self) -> Cursor | None:
        """Where a summariser that never ran starts: just before the oldest change (None: no history)."""
        oldest = await self.pool.fetchval(
            "SELECT min(updated_at) FROM action_histories WHERE cluster_id = $1", self.cluster_id)
        return None if oldest is None else Cursor(at=oldest - datetime.timedelta(microseconds=1))

    async def changed(self, *, after: Cursor, until: datetime.datetime, limit: int) -> list[Change]:
        """Targets changed after the cursor and at or before ``until``, oldest change first.

        The caller keeps ``until - after.at`` short (an hour): the query then reads one hour of
        history however large the history is."""
        rows = await self.pool.fetch(_CHANGED, self.cluster_id, after.at, until, after.key, limit)
        return [Change(target=TargetRef(namespace=row["namespace"], kind=row["kind"], name=row["name"]),
                       at=row["changed_at"]) for row in rows]

    def _target_args(self, targets: Sequence[TargetRef]) -> list[object]:
        return [self.cluster_id, [t.namespace for t in targets], [t.kind for t in targets],
                [t.name for t in targets]]

    async def facts(self, targets: Sequence[TargetRef], *, now: datetime.datetime) -> list[TargetFacts]:
        """What the summaries of these targets say, read in five set-based queries; targets without a
        history (nothing recorded on them) are left out."""
        if not targets:
            return []
        args = self._target_args(targets)
        async with self.pool.acquire() as connection:
            histories = await connection.fetch(
                f"""
                SELECT r.namespace, r.kind, r.name, r.api_version, h.total_actions, h.last_action_at
                FROM resource_references r JOIN action_histories h ON h.resource_id = r.id
                WHERE r.cluster_id = $1 AND (r.namespace, r.kind, r.name) IN (SELECT * FROM {_TARGETS})
                """, *args)
            recent = await connection.fetch(
                f"""
                SELECT namespace, kind, name, action_type, count(*) AS n FROM resource_action_traces
                WHERE cluster_id = $1 AND action_timestamp > $5
                  AND (namespace, kind, name) IN (SELECT * FROM {_TARGETS})
                GROUP BY namespace, kind, name, action_type
                """, *args, now - RECENT)
            scores = await connection.fetch(
                f"""
                SELECT namespace, kind, name, action_timestamp, action_type, effectiveness_score::float8 AS score
                FROM resource_action_traces
                WHERE cluster_id = $1 AND action_timestamp > $5 AND effectiveness_score IS NOT NULL
                  AND (namespace, kind, name) IN (SELECT * FROM {_TARGETS})
                ORDER BY action_timestamp, id
                """, *args, now - SCORE_PERIOD)
            detections = await connection.fetch(
                f"""
                SELECT namespace, kind, name, pattern_type, severity, occurrences, last_seen,
                       confidence::float8 AS confidence, alert_namespace || '/' || alert_name AS alert
                FROM oscillation_detections
                WHERE cluster_id = $1 AND (namespace, kind, name) IN (SELECT * FROM {_TARGETS})
                """, *args)
            restrictions = await connection.fetch(
                """
                SELECT DISTINCT ON (scope) scope, pattern, strategy, until, alert FROM restrictions
                WHERE cluster_id = $1 AND scope = ANY($2::text[]) AND until > $3
                ORDER BY scope, until DESC
                """, self.cluster_id, [f"target/{t.key}" for t in targets], now)

        def key(row: asyncpg.Record) -> str:
            return f"{row['namespace']}/{row['kind']}/{row['name']}"

        recent_by: dict[str, dict[str, int]] = {}
        for row in recent:
            recent_by.setdefault(key(row), {})[row["action_type"]] = row["n"]
        scores_by: dict[str, list[ScoredSample]] = {}
        for row in scores:
            scores_by.setdefault(key(row), []).append(
                ScoredSample(at=row["action_timestamp"], action_type=row["action_type"], score=as_score(row["score"])))
        patterns_by: dict[str, list[DetectedPattern]] = {}
        for row in detections:
            patterns_by.setdefault(key(row), []).append(DetectedPattern(
                pattern_type=row["pattern_type"], severity=row["severity"], occurrences=row["occurrences"],
                last_seen=row["last_seen"], confidence=row["confidence"], alert=row["alert"]))
        restriction_by = {
            row["scope"].removeprefix("target/"): ActiveRestriction(
                pattern=row["pattern"], strategy=row["strategy"], until=row["until"], alert=row["alert"])
            for row in restrictions
        }
        found = []
        for row in histories:
            target = TargetRef(namespace=row["namespace"], kind=row["kind"], name=row["name"],
                               api_version=row["api_version"])
            found.append(TargetFacts(
                target=target, total_actions=row["total_actions"], last_action_at=row["last_action_at"],
                recent=recent_by.get(target.key, {}), patterns=patterns_by.get(target.key, ()),
                scores=scores_by.get(target.key, ()), restriction=restriction_by.get(target.key)))
        return sorted(found, key=lambda f: f.target.key)

    async def active_targets(self, *, since: datetime.datetime) -> list[TargetRef]:
        """Targets whose last action is at or after ``since``: those that keep a summary."""
        rows = await self.pool.fetch(
            """
            SELECT r.namespace, r.kind, r.name FROM action_histories h JOIN resource_references r ON r.id = h.resource_id
            WHERE h.cluster_id = $1 AND h.last_action_at >= $2
            """, self.cluster_id, since)
        return [TargetRef(namespace=row["namespace"], kind=row["kind"], name=row["name"]) for row in rows]

    async def last_assessed(self) -> datetime.datetime | None:
        """When an action was last assessed: the effectiveness metrics change only then (or with time)."""
        return await self.pool.fetchval(
            "SELECT max(effectiveness_assessed_at) FROM resource_action_traces"
            " WHERE cluster_id = $1 AND effectiveness_assessed_at IS NOT NULL", self.cluster_id)


class LeaderLock:
    """A session advisory lock held on one pooled connection for as long as this process leads.

    Sticky on purpose: the leader keeps what it knows of the objects it wrote, and a lead that
    changed hands every pass would have to forget it every pass. The lock dies with the session,
    so a crashed leader (or a PostgreSQL restart) lets another replica take over at its next pass.
    """

    def __init__(self, pool: asyncpg.Pool, *, name: str) -> None:
        self.pool = pool
        self.name = name
        self._connection: asyncpg.pool.PoolConnectionProxy | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    async def hold(self) -> bool:
        """True while this process leads: checks a held lock's session is alive, else tries to take it."""
        if self._connection is not None:
            try:
                await self._connection.fetchval("SELECT 1", timeout=5)
                return True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                await self._drop()
                return False
        connection = await self.pool.acquire()
        try:
            if await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.name):
                self._connection = connection
                return True
        except BaseException:
            await self.pool.release(connection)
            raise
        await self.pool.release(connection)
        return False

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()  # ends the session, and the lock with it
            await self.pool.release(connection)

    async def release(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.execute("SELECT pg_advisory_unlock(hashtext($1))", self.name)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._drop()
                return
            connection, self._connection = self._connection, None
            await self.pool.release(connection)
