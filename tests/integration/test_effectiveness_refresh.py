"""The periodic effectiveness refresh sums the samples up in PostgreSQL (issue 15: the refresh must
not hold the gate's event loop while it groups every assessed action of 30 days in Python).

It must give what the Python aggregation of every sample gives: the same groups, means, intervals
and trends, in the same order, and store them. Real PostgreSQL.
"""

from __future__ import annotations

import datetime
import random

import asyncpg
import pytest

from webhook.effectiveness.aggregate import aggregate_all
from webhook.effectiveness.service import DEFAULT_PERIOD, EffectivenessService, scored_actions
from webhook.store.history import HistoryStore
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool

CLUSTER = "default"
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


async def insert_traces(connection: asyncpg.Connection, *, count: int) -> None:
    """Assessed and unassessed actions over the period and just outside it; some share a timestamp
    (the trend's order is then the id's), some have no namespace, alert or model, or an empty one."""
    chance = random.Random(15)
    rows = []
    for i in range(count):
        at = NOW - datetime.timedelta(hours=chance.randrange(0, 24 * 35)) if i % 9 else NOW - datetime.timedelta(days=3)
        score = None if i % 5 == 0 else round(chance.random(), 3) if i % 7 else 0.6
        rows.append((CLUSTER, f"uid-{i}", at, chance.choice(["scale_deployment", "restart_deployment", "increase_resources"]),
                     "system:serviceaccount:ns:agent", "automation", chance.choice(["shop", "web", None, ""]),
                     "Deployment", f"app-{i % 13}", chance.choice(["HighLatency", "KubePodOOMKilled", None]),
                     chance.choice(["gpt-x", "", None, "claude-y"]), score))
    await connection.executemany(
        """
        INSERT INTO resource_action_traces (cluster_id, request_uid, action_timestamp, action_type, actor, actor_class,
            namespace, kind, name, alert_name, model_used, effectiveness_score, event)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '{}'::jsonb)
        """, rows)


@pytest.mark.parametrize("count", [0, 1, 3, 600])
async def test_the_refresh_gives_what_aggregating_every_sample_gives(fresh_database, count):
    await migrate(fresh_database)
    pool = await create_pool(fresh_database, min_size=0)
    try:
        async with pool.acquire() as connection:
            await connection.execute("SELECT sg_ensure_partition(now() - interval '35 days')")
            await insert_traces(connection, count=count)
        service = EffectivenessService(history=HistoryStore(postgres=PostgresStore(pool, cluster_id=CLUSTER),
                                                            cache=None))
        every_sample = aggregate_all(scored_actions(
            await service.repository.scored(since=NOW - DEFAULT_PERIOD, until=NOW)))

        refreshed = await service.refresh(now=NOW)

        assert [(a.scope, a.scope_value, a.action_type) for a in refreshed] == \
            [(a.scope, a.scope_value, a.action_type) for a in every_sample]
        for got, want in zip(refreshed, every_sample, strict=True):
            assert got.summary.sample_size == want.summary.sample_size
            assert got.summary.trend is want.summary.trend, (got, want)
            assert got.summary.mean == pytest.approx(want.summary.mean, abs=1e-9)
            assert got.summary.ci_lower == pytest.approx(want.summary.ci_lower, abs=1e-9)
            assert got.summary.ci_upper == pytest.approx(want.summary.ci_upper, abs=1e-9)
        if count > 100:  # the data gives every scope and trend something to say
            assert {a.scope.value for a in refreshed} == {"global", "namespace", "alert", "model"}
            assert len({a.summary.trend for a in refreshed}) > 1
        stored = await pool.fetch("SELECT scope_type, scope_value, action_type, sample_size FROM"
                                  " action_effectiveness_metrics WHERE cluster_id = $1", CLUSTER)
        assert sorted((r["scope_type"], r["scope_value"], r["action_type"], r["sample_size"]) for r in stored) == \
            sorted((a.scope.scope_type, a.scope_value, a.action_type, a.summary.sample_size) for a in every_sample)
    finally:
        await pool.close()


async def test_the_read_of_assessed_actions_uses_the_index_of_assessed_actions(fresh_database):
    """The 30-day read must not walk every action of 30 days to find the assessed ones."""
    await migrate(fresh_database)
    connection = await asyncpg.connect(fresh_database)
    try:
        await connection.execute("SELECT sg_ensure_partition(now() - interval '35 days')")
        await insert_traces(connection, count=50)
        await connection.execute(
            """
            INSERT INTO resource_action_traces (cluster_id, request_uid, action_timestamp, action_type, actor,
                actor_class, event)
            SELECT $1, 'unscored-' || i, now() - (i % 700) * interval '1 hour', 'scale_deployment', 'a', 'automation',
                   '{}'::jsonb
            FROM generate_series(1, 20000) AS i
            """, CLUSTER)
        await connection.execute("ANALYZE resource_action_traces")
        plan = "\n".join(row[0] for row in await connection.fetch(
            "EXPLAIN SELECT action_timestamp FROM resource_action_traces WHERE cluster_id = $1"
            " AND effectiveness_score IS NOT NULL AND action_timestamp >= $2 AND action_timestamp <= $3",
            CLUSTER, NOW - DEFAULT_PERIOD, NOW))
        # Each partition's copy of the partial index implies the predicate: no row is read to test it.
        assert "Index" in plan and "effectiveness_score" not in plan, plan
    finally:
        await connection.close()
