"""The statistics keeper analyzes a hot table that grew past its statistics, once, and leaves it
alone until it doubles again; the admission path's cold read then uses the target's index."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from webhook.store.migrate import migrate
from webhook.store.postgres import create_pool
from webhook.store.statistics import StatisticsKeeper


@pytest.fixture
async def migrated_pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(fresh_database)
    pool = await create_pool(fresh_database, max_size=2, command_timeout=None)
    try:
        yield pool
    finally:
        await pool.close()


async def _insert_traces(pool: asyncpg.Pool, count: int, *, offset: int = 0) -> None:
    """Insert, and publish the table's counters at once (backends flush them lazily, up to 1s later)."""
    async with pool.acquire() as connection:
        await _insert(connection, count, offset=offset)
        await connection.execute("SELECT pg_stat_force_next_flush()")
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_stat_clear_snapshot()")


async def _insert(connection: asyncpg.Connection, count: int, *, offset: int) -> None:
    await connection.execute("SELECT sg_ensure_partition(now())")
    await connection.execute(
        """
        INSERT INTO resource_action_traces (cluster_id, request_uid, action_timestamp, action_type, actor,
                                            actor_class, namespace, kind, name, event)
        SELECT 'stats', 'uid-' || g, now() - (g || ' seconds')::interval, 'scale_deployment', 'agent-' || (g % 50),
               'automation', 'team-' || (g % 7), 'Deployment', 'app-' || (g % 900), '{}'::jsonb
        FROM generate_series($1::int, $2::int) AS g
        """, offset, offset + count - 1)
    await connection.execute("SELECT 1")


async def _plan(pool: asyncpg.Pool) -> str:
    rows = await pool.fetch(
        "EXPLAIN SELECT t.id FROM resource_action_traces t WHERE t.cluster_id = 'stats' AND t.namespace = 'team-1'"
        " AND t.kind = 'Deployment' AND t.name = 'app-1' AND t.action_timestamp > now() - interval '3 hours'")
    return "\n".join(row[0] for row in rows)


async def test_young_tables_are_analyzed_until_they_stop_doubling(migrated_pool: asyncpg.Pool) -> None:
    keeper = StatisticsKeeper(migrated_pool, tables=("resource_action_traces",), min_rows=500)
    await _insert_traces(migrated_pool, 5000)

    analyzed = await keeper.refresh()
    assert analyzed and all("resource_action_traces_" in name for name in analyzed)
    conditions = [line for line in (await _plan(migrated_pool)).splitlines() if "Index Cond" in line]
    # The partition holding the rows is read through the target's index (empty ones may plan anything).
    assert any("name = 'app-1'" in line for line in conditions)

    assert await keeper.refresh() == []  # nothing changed since: no second ANALYZE

    async with migrated_pool.acquire() as connection:  # every row updated twice: changes, not growth
        for _ in range(2):
            await connection.execute("UPDATE resource_action_traces SET bypass_reason = 'touched'")
        await connection.execute("SELECT pg_stat_force_next_flush()")
        await connection.execute("SELECT 1")
    assert await keeper.refresh() == []

    await _insert_traces(migrated_pool, 1000, offset=5000)  # grew by a fifth: autovacuum's business
    assert await keeper.refresh() == []

    await _insert_traces(migrated_pool, 7000, offset=6000)  # more than doubled: analyzed again
    assert await keeper.refresh() == analyzed
