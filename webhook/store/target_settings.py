"""Per-target retention settings into ``action_histories``, where retention reads them.

The columns are the seed's (``max_actions``, ``max_age_days``, ``compaction_strategy``); the
values come from the targets' ActionHistorySummaries (:mod:`webhook.kube.target_settings`).
``updated_at`` is left alone: it means "an action was recorded", and the summariser follows it.
"""

from __future__ import annotations

import dataclasses

import asyncpg

from webhook.actions.model import TargetRef

_UPDATE = """
UPDATE action_histories h
SET max_actions = v.max_actions, max_age_days = v.max_age_days, compaction_strategy = v.compaction
FROM resource_references r,
     unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::text[])
         AS v(namespace, kind, name, max_actions, max_age_days, compaction)
WHERE r.id = h.resource_id AND r.cluster_id = $1
  AND COALESCE(r.namespace, '') = v.namespace AND r.kind = v.kind AND r.name = v.name
  AND (h.max_actions, h.max_age_days, h.compaction_strategy)
      IS DISTINCT FROM (v.max_actions, v.max_age_days, v.compaction)
"""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredRetention:
    """One target's retention columns, every value given (defaults filled in by the caller)."""

    target: TargetRef
    max_actions: int
    max_age_days: int
    compaction: str


async def store_retention(pool: asyncpg.Pool, *, cluster_id: str, rows: list[StoredRetention]) -> int:
    """Write the rows whose values differ from what is stored; returns how many changed."""
    if not rows:
        return 0
    status = await pool.execute(
        _UPDATE, cluster_id, [r.target.namespace for r in rows], [r.target.kind for r in rows],
        [r.target.name for r in rows], [r.max_actions for r in rows], [r.max_age_days for r in rows],
        [r.compaction for r in rows])
    return int(status.rsplit(" ", 1)[-1])
