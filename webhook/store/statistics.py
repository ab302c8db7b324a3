"""Fresh planner statistics for the tables the admission path reads, while they are young.

A table PostgreSQL has never analyzed has no statistics, and without them every index that starts
with ``cluster_id`` looks as good as the one that fits the query: right after a fresh install, and
at the start of every month's partition, a cold target read walked the whole partition through the
``(cluster_id, request_uid)`` index (5,500 blocks and 5 ms a read after two minutes, issue 15).
Autovacuum fixes that eventually — at its next nap, once enough rows changed — but the gate reads
these tables hundreds of times a second from the first minute.

So: every ``interval`` the keeper looks at the hot tables' counters and analyzes those whose live
rows more than doubled since they were last analyzed (or were never analyzed and hold rows). A table
is therefore analyzed about log2(its size) times in its life, all of them while it is small and
cheap to analyze; a grown table is left to autovacuum. Rows counts, not changes: a detection row is
updated on every refusal, and counting updates analyzed that table every 15 s for nothing (30 times
in a 30-minute run, up to 0.55 s each).
"""

from __future__ import annotations

import logging

import asyncpg

logger = logging.getLogger(__name__)

#: The tables (and partitions of) whose plans are on the admission path.
HOT_TABLES = ("resource_action_traces", "action_status", "oscillation_detections", "restrictions",
              "admission_decisions", "resource_references", "action_histories")

#: Below this many live rows a table is never analyzed here: it is cheap to scan whatever the plan.
MIN_ROWS = 500

_YOUNG = """
SELECT format('%I.%I', s.schemaname, s.relname) AS name
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
WHERE c.relkind = 'r'
  AND (s.relname = ANY($1::text[]) OR EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
        WHERE i.inhrelid = s.relid AND p.relname = ANY($1::text[])))
  AND s.n_live_tup >= $2
  AND s.n_live_tup > 2 * GREATEST(c.reltuples, 0)
ORDER BY s.n_live_tup DESC
"""


class StatisticsKeeper:
    def __init__(self, pool: asyncpg.Pool, *, tables: tuple[str, ...] = HOT_TABLES,
                 min_rows: int = MIN_ROWS) -> None:
        self.pool = pool
        self.tables = tables
        self.min_rows = min_rows
        self.analyzed = 0  # tables analyzed so far (for logs and tests)

    async def young(self) -> list[str]:
        """The hot tables (leaf partitions included) that more than doubled since their last analyze."""
        rows = await self.pool.fetch(_YOUNG, list(self.tables), self.min_rows)
        return [row["name"] for row in rows]

    async def refresh(self) -> list[str]:
        """Analyze the young tables; return their names."""
        names = await self.young()
        for name in names:
            async with self.pool.acquire() as connection:
                await connection.execute(f"ANALYZE {name}")  # a name from the catalog, quoted by format()
        if names:
            self.analyzed += len(names)
            logger.info("analyzed young table(s) for the admission path's plans: %s", ", ".join(names))
        return names
