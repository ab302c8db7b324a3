"""Per-workload retention settings (from the ActionHistorySummary) land in ``action_histories``
and are what the retention run applies, to that workload only; taking them away restores the defaults."""

from __future__ import annotations

import datetime

from tests.integration.test_retention import now_utc, seed, store, target  # noqa: F401 - store: the fixture
from webhook.kube.target_settings import stored
from webhook.policy.target_settings import parse
from webhook.retention.runner import RetentionRunner
from webhook.store.postgres import PostgresStore
from webhook.store.target_settings import store_retention


async def columns(store: PostgresStore, name: str) -> tuple:  # noqa: F811
    row = await store.pool.fetchrow(
        "SELECT h.max_actions, h.max_age_days, h.compaction_strategy FROM action_histories h"
        " JOIN resource_references r ON r.id = h.resource_id WHERE r.name = $1", name)
    return tuple(row)


async def test_a_workloads_settings_are_what_retention_applies(store: PostgresStore) -> None:  # noqa: F811
    now = now_utc()
    tuned, plain = target("tuned"), target("plain")
    ages = [0.5 + i for i in range(40)]           # one a day, the last 40 days
    await seed(store, tuned, now=now, ages=ages)
    await seed(store, plain, now=now, ages=ages)

    settings = parse({"retentionPolicy": {"maxActions": 12, "maxAge": "3w", "compactionStrategy": "oldest-first"}})
    assert settings.problems == ()
    assert await store_retention(store.pool, cluster_id="default", rows=[stored(tuned, settings.retention)]) == 1
    assert await store_retention(store.pool, cluster_id="default", rows=[stored(tuned, settings.retention)]) == 0
    assert await columns(store, "tuned") == (12, 21, "oldest-first")
    assert await columns(store, "plain") == (1000, 90, "pattern-aware")

    await RetentionRunner(store.pool, cluster_id="default").run(now=now)
    left = [row["action_timestamp"] for row in await store.pool.fetch(
        "SELECT action_timestamp FROM resource_action_traces WHERE name = 'tuned' ORDER BY action_timestamp DESC")]
    assert len(left) == 12 and min(left) == now - datetime.timedelta(days=11.5)   # the newest twelve
    assert await store.pool.fetchval("SELECT count(*) FROM resource_action_traces WHERE name = 'plain'") == 40

    assert await store_retention(store.pool, cluster_id="default", rows=[stored(tuned, parse({}).retention)]) == 1
    assert await columns(store, "tuned") == (1000, 90, "pattern-aware")
