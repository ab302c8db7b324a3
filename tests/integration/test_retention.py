"""Retention against a real PostgreSQL: a 120-day history loses exactly what each strategy says,
old monthly partitions are dropped whole, every run is recorded, and only one replica runs at once."""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.retention.policy import Strategy
from webhook.retention.runner import RetentionRunner
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool

AGENT = "system:serviceaccount:ops:agent"
DAY = datetime.timedelta(days=1)
# Every target gets the same timeline: two actions in the last 24h, then one every 4 days from 1 to
# 117 days ago. Older than 90 days: 93, 97, ..., 117 (7 actions), whatever the strategy.
AGES = [0.1, 0.5] + [4 * k + 1 for k in range(30)]
EXPIRED = {age for age in AGES if age > 90}


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[PostgresStore]:
    await migrate(fresh_database)
    pool = await create_pool(fresh_database, max_size=6)
    try:
        yield PostgresStore(pool, cluster_id="default")
    finally:
        await pool.close()


def target(name: str) -> TargetRef:
    return TargetRef(namespace="shop", kind="Deployment", name=name, api_version="apps/v1")


async def seed(store: PostgresStore, on: TargetRef | None, *, now: datetime.datetime, ages=AGES,
               action_type: str = "restart_pod") -> dict[float, int]:
    """Record one action per age (days before now); return age → id."""
    ids = {}
    for age in ages:
        event = ActionEvent(uid=f"{on.name if on else 'untargeted'}-{age}-{uuid.uuid4().hex[:6]}",
                            at=now - age * DAY, target=on, action_type=action_type, actor=AGENT,
                            actor_class=ActorClass.AUTOMATION)
        ids[age] = await store.record_action(event)
    return ids


async def score(store: PostgresStore, ids: dict[float, int], scores: dict[float, float]) -> None:
    for age, value in scores.items():
        await store.pool.execute("UPDATE resource_action_traces SET effectiveness_score = $2 WHERE id = $1",
                                 ids[age], value)


async def policy(store: PostgresStore, on: TargetRef, *, strategy: str, max_actions: int = 10) -> None:
    await store.pool.execute(
        "UPDATE action_histories h SET max_actions = $1, compaction_strategy = $2 FROM resource_references r"
        " WHERE r.id = h.resource_id AND r.name = $3", max_actions, strategy, on.name)


async def detection_with_evidence(store: PostgresStore, name: str, uids: list[str], now: datetime.datetime) -> None:
    """A detection as the gate writes it: the trigger of migration 0003 marks its evidence."""
    evidence = [{"requestUid": uid, "actionType": "restart_pod"} for uid in uids]
    await store.pool.execute(
        """
        INSERT INTO oscillation_detections (cluster_id, alert_namespace, alert_name, pattern_type, actor, severity,
            confidence, strategy, enforcement_action, phase, message, summary, evidence, first_seen, last_seen)
        VALUES ('default', 'shop', $1, 'ineffective-loop', $2, 'high', 0.9, 'escalate-human', 'enforce',
                'PendingApproval', 'm', 's', $3, $4, $4)
        """, name, AGENT, evidence, now)


async def remaining(store: PostgresStore, on: TargetRef | None) -> set[int]:
    if on is None:
        rows = await store.pool.fetch("SELECT id FROM resource_action_traces WHERE namespace IS NULL")
    else:
        rows = await store.pool.fetch("SELECT id FROM resource_action_traces WHERE name = $1", on.name)
    return {row["id"] for row in rows}


def ids_of(ids: dict[float, int], ages) -> set[int]:
    return {ids[age] for age in ages}


async def partitions(store: PostgresStore) -> set[str]:
    rows = await store.pool.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'resource_action_traces'::regclass")
    return {row["relname"] for row in rows}


def month_name(moment: datetime.datetime) -> str:
    return f"resource_action_traces_{moment:%Y_%m}"


def month_end(moment: datetime.datetime) -> datetime.datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + datetime.timedelta(days=32)).replace(day=1)


async def test_each_strategy_removes_exactly_what_it_says_and_old_partitions_go(store: PostgresStore) -> None:
    now = now_utc()
    pattern, oldest, best = target("pattern"), target("oldest"), target("best")

    # pattern-aware, maxActions 10: keeps the last 24h (0.1, 0.5), pattern examples (9, 45; 97 is
    # too old to save), the best 10//4 = 2 effective (29 at .99, 13 at .95 — not 5 at .9, 21 at .85),
    # the newest 10//10 = 1 failure (17 — not 25, 33); middle (37 at .5) and unassessed ones go.
    p = await seed(store, pattern, now=now)
    await score(store, p, {0.5: 0.1, 5: 0.9, 13: 0.95, 21: 0.85, 29: 0.99, 17: 0.1, 25: 0.2, 33: 0.05, 37: 0.5})
    uids = {row["id"]: row["request_uid"] for row in await store.pool.fetch(
        "SELECT id, request_uid FROM resource_action_traces WHERE name = 'pattern'")}
    await detection_with_evidence(store, "pattern-loop", [uids[p[9]], uids[p[45]], uids[p[97]]], now)
    await policy(store, pattern, strategy="pattern-aware")

    # oldest-first, maxActions 10: the newest ten.
    o = await seed(store, oldest, now=now)
    await policy(store, oldest, strategy="oldest-first")

    # effectiveness-based, maxActions 10: 89 .99, 49 .95, 33 .9, 41 .8, 57 .7, 65 .6, then the
    # unassessed (0.5) newest first: 0.5, 9, 13, 17. 101 at 1.0 is past the max age.
    b = await seed(store, best, now=now)
    await score(store, b, {1: 0.1, 5: 0.2, 33: 0.9, 41: 0.8, 49: 0.95, 57: 0.7, 65: 0.6, 73: 0.3, 81: 0.4,
                           89: 0.99, 0.1: 0.0, 101: 1.0})
    await policy(store, best, strategy="effectiveness-based")

    untargeted = await seed(store, None, now=now, ages=[50, 100])
    before_partitions = await partitions(store)

    flagged = {row["id"] for row in await store.pool.fetch(
        "SELECT id FROM resource_action_traces WHERE is_pattern_example")}
    assert flagged == ids_of(p, [9, 45, 97])

    report = await RetentionRunner(store.pool, cluster_id="default").run(now=now)
    assert report.result == "success", report.error

    assert await remaining(store, pattern) == ids_of(p, [0.1, 0.5, 9, 45, 29, 13, 17])
    assert await remaining(store, oldest) == ids_of(o, [0.1, 0.5, 1, 5, 9, 13, 17, 21, 25, 29])
    assert await remaining(store, best) == ids_of(b, [89, 49, 33, 41, 57, 65, 0.5, 9, 13, 17])
    assert await remaining(store, None) == {untargeted[50]}
    expected_removed = (32 - 7) + (32 - 10) + (32 - 10) + 1
    assert report.actions_removed == expected_removed
    # Months past the age limit are dropped whole before any target is planned: what they held is
    # removed and aged out, but under no strategy (each target holds one action per age).
    cutoff = now - 90 * DAY
    in_dropped = sum(1 for age in AGES if month_end(now - age * DAY) <= cutoff)
    assert in_dropped
    assert report.removed_by_strategy == {"pattern-aware": 25 - in_dropped, "oldest-first": 22 - in_dropped,
                                          "effectiveness-based": 22 - in_dropped}
    assert report.aged_out == 3 * 7 + 1

    # Whole months entirely older than 90 days are gone; the current month and two ahead exist.
    seeded_months = {now - age * DAY for age in AGES}
    doomed = {month_name(m) for m in seeded_months if month_end(m) <= cutoff}
    assert doomed and doomed <= before_partitions
    after = await partitions(store)
    assert not doomed & after
    assert set(report.partitions_dropped) == doomed
    for name in doomed:
        assert await store.pool.fetchval("SELECT to_regclass($1)", name) is None
    first = now.replace(day=1)
    ahead = [first, month_end(first), month_end(month_end(first))]
    assert {month_name(m) for m in ahead} <= after
    assert (before_partitions - doomed) <= after

    rows = await store.pool.fetch("SELECT * FROM retention_operations ORDER BY id")
    assert len(rows) == 1
    row = rows[0]
    assert (row["result"], row["strategy"], row["actions_removed"]) == ("success", "per-target", expected_removed)
    assert set(row["partitions_dropped"]) == doomed
    assert row["finished_at"] >= row["started_at"]
    details = row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])
    assert details["removed_by_namespace"] == {"shop": 69 - 3 * in_dropped}

    # A second run has nothing left to do, and is recorded too.
    again = await RetentionRunner(store.pool, cluster_id="default").run(now=now)
    assert (again.result, again.actions_removed, again.partitions_dropped) == ("success", 0, [])
    assert await store.pool.fetchval("SELECT count(*) FROM retention_operations") == 2


async def test_strategy_override_applies_to_every_target(store: PostgresStore) -> None:
    now = now_utc()
    ids = await seed(store, target("cart"), now=now)           # default policy: pattern-aware, 1000
    await policy(store, target("cart"), strategy="pattern-aware", max_actions=10)
    report = await RetentionRunner(store.pool, cluster_id="default").run(now=now, strategy=Strategy.OLDEST_FIRST)
    assert report.strategy == "oldest-first"
    assert await remaining(store, target("cart")) == ids_of(ids, AGES[:10])


async def test_a_run_is_skipped_while_another_replica_holds_the_lock(store: PostgresStore,
                                                                     fresh_database: str) -> None:
    now = now_utc()
    ids = await seed(store, target("cart"), now=now)
    other_replica = await asyncpg.connect(fresh_database)
    try:
        assert await other_replica.fetchval("SELECT pg_try_advisory_lock(hashtext('safety-gate/retention/default'))")
        report = await RetentionRunner(store.pool, cluster_id="default").run(now=now)
        assert report.result == "skipped" and not report.leader
        assert await remaining(store, target("cart")) == set(ids.values())
        assert await store.pool.fetchval("SELECT count(*) FROM retention_operations") == 0
    finally:
        await other_replica.close()           # the lock dies with the session, as when a leader crashes
    report = await RetentionRunner(store.pool, cluster_id="default").run(now=now)
    assert report.result == "success" and report.actions_removed == len(EXPIRED)


async def test_two_concurrent_runs_only_one_does_the_work(fresh_database: str, store: PostgresStore) -> None:
    now = now_utc()
    ids = await seed(store, target("cart"), now=now)
    await policy(store, target("cart"), strategy="oldest-first")
    second_pool = await create_pool(fresh_database, max_size=3)   # another replica: its own pool
    leading = asyncio.Event()
    release = asyncio.Event()

    async def hold_open() -> None:
        leading.set()
        await release.wait()

    try:
        first = asyncio.create_task(RetentionRunner(store.pool, cluster_id="default").run(now=now, on_leader=hold_open))
        await asyncio.wait_for(leading.wait(), 30)
        second = await RetentionRunner(second_pool, cluster_id="default").run(now=now)
        release.set()
        first_report = await asyncio.wait_for(first, 60)
    finally:
        release.set()
        await second_pool.close()
    assert second.result == "skipped"
    assert first_report.result == "success"
    assert await remaining(store, target("cart")) == ids_of(ids, AGES[:10])
    rows = await store.pool.fetch("SELECT result, actions_removed FROM retention_operations")
    assert [(r["result"], r["actions_removed"]) for r in rows] == [("success", 22)]


async def test_failed_run_is_recorded_as_failure(store: PostgresStore) -> None:
    now = now_utc()
    await seed(store, target("cart"), now=now, ages=[100])
    await store.pool.execute("ALTER TABLE resource_action_traces RENAME TO renamed_traces")
    try:
        report = await RetentionRunner(store.pool, cluster_id="default").run(now=now)
    finally:
        await store.pool.execute("ALTER TABLE renamed_traces RENAME TO resource_action_traces")
    assert report.result == "failure" and report.error
    row = await store.pool.fetchrow("SELECT result, details FROM retention_operations")
    assert row["result"] == "failure"
    details = row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])
    assert "resource_action_traces" in details["error"]


def test_cli_runs_retention_and_prints_a_summary(fresh_database: str) -> None:
    async def prepare() -> dict[float, int]:
        await migrate(fresh_database)
        pool = await create_pool(fresh_database, max_size=2)
        try:
            return await seed(PostgresStore(pool, cluster_id="default"), target("cart"),
                              now=datetime.datetime(2026, 11, 21, tzinfo=datetime.timezone.utc))
        finally:
            await pool.close()

    asyncio.run(prepare())
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "retention", "run", "--postgres-dsn", fresh_database,
         "--now", "2026-11-21T00:00:00Z", "--strategy", "oldest-first"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "success" in out and "oldest-first" in out
    assert "actions removed 7" in out     # the default maxActions (1000) is not reached: only age
    assert "resource_action_traces_2026_07" in out


async def test_the_server_runs_retention_periodically(gate_factory, fresh_database: str) -> None:
    pool = None
    gate = gate_factory(env={"SAFETY_GATE_RETENTION_INTERVAL": "1"})
    try:
        pool = await create_pool(fresh_database, max_size=2)
        store = PostgresStore(pool, cluster_id="default")
        ids = await seed(store, target("cart"), now=now_utc(), ages=[1, 120])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        succeeded = "SELECT count(*) FROM retention_operations WHERE result = 'success'"
        while loop.time() < deadline:
            # The deletion commits before the run's operation row is closed: wait for both.
            if await remaining(store, target("cart")) == {ids[1]} and await pool.fetchval(succeeded) >= 1:
                break
            await asyncio.sleep(0.2)
        assert await remaining(store, target("cart")) == {ids[1]}
        assert await pool.fetchval(succeeded) >= 1
        metrics = gate.client.get("/metrics").text
        assert 'ai_retention_operations_total{namespace="all",result="success",strategy="per-target"}' in metrics
    finally:
        if pool is not None:
            await pool.close()
