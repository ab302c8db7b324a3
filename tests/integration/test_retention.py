"""Retention against a real PostgreSQL: a 120-day history loses exactly what each strategy says,
old monthly partitions are dropped whole, every run is recorded, and only one replica runs at once."""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.retention.plan import plan_deletions
from webhook.retention.policy import RetentionPolicy, Strategy, Trace
from webhook.retention.runner import RetentionRunner
from webhook.store.effects import Effects
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


# --- issue 15: retention never stalls decisions ---------------------------------------------------


@pytest.fixture
async def batch_pool(fresh_database: str, store: PostgresStore) -> AsyncIterator[asyncpg.Pool]:
    """The pool retention runs on in the gate: no command timeout (a detach may wait for writers)."""
    pool = await create_pool(fresh_database, max_size=3, command_timeout=None)
    try:
        yield pool
    finally:
        await pool.close()


def action(on: TargetRef | None, at: datetime.datetime) -> ActionEvent:
    return ActionEvent(uid=f"a-{uuid.uuid4().hex[:10]}", at=at, target=on, action_type="restart_pod", actor=AGENT,
                       actor_class=ActorClass.AUTOMATION)


def plain_decision(event: ActionEvent) -> Effects:
    return Effects(uid=event.uid, decided_at=event.at, event=event, record=True, outcome="allow", allowed=True,
                   code=None, pattern=None, strategy=None, message=None, warnings=(), latency_ms=1.0)


async def open_writer(dsn: str) -> tuple[asyncpg.Connection, Any]:
    """A decision caught mid-transaction: it has inserted into this month and not committed."""
    connection = await asyncpg.connect(dsn)
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute(
        "INSERT INTO resource_action_traces (cluster_id, request_uid, action_timestamp, action_type, actor,"
        " actor_class, event) VALUES ('default', $1, now(), 'restart_pod', $2, 'automation', '{}')",
        f"open-{uuid.uuid4().hex[:8]}", AGENT)
    return connection, transaction


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll a state of the database (not a duration): the bound only keeps a broken run from hanging."""
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), 60)


_DETACHING = ("SELECT pid, wait_event, pg_blocking_pids(pid) AS blockers FROM pg_stat_activity"
              " WHERE query LIKE 'ALTER TABLE resource_action_traces DETACH PARTITION%'")


async def detach_waiting(store: PostgresStore) -> bool:
    row = await store.pool.fetchrow(_DETACHING)
    return row is not None and row["wait_event"] == "virtualxid"


async def detach_pending(store: PostgresStore, name: str) -> bool:
    return bool(await store.pool.fetchval(
        "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass($1)", name))


async def test_an_expired_month_is_detached_while_a_writer_holds_its_transaction_open(
        store: PostgresStore, batch_pool: asyncpg.Pool, fresh_database: str) -> None:
    now = now_utc()
    old = await seed(store, target("cart"), now=now, ages=[120])
    doomed = month_name(now - 120 * DAY)
    writer, transaction = await open_writer(fresh_database)
    try:
        run = asyncio.create_task(RetentionRunner(batch_pool, cluster_id="default", pause=0).run(now=now))
        # The detach waits for the open writer, which took its lock on the parent before the detach began...
        await until(lambda: detach_waiting(store))
        detach = await store.pool.fetchrow(_DETACHING)
        writer_pid = await writer.fetchval("SELECT pg_backend_pid()")
        assert detach["wait_event"] == "virtualxid" and writer_pid in detach["blockers"]
        # ...its first step already committed: the month is pending, queries planned from now on skip it.
        assert await detach_pending(store, doomed)
        # Meanwhile decisions write and read as ever: nothing waits for the detach.
        fresh = action(target("cart"), now)
        assert await asyncio.wait_for(store.write_effects(plain_decision(fresh)), 30)
        assert [event.uid for event in await asyncio.wait_for(
            store.target_events(target("cart"), since=now - DAY), 30)] == [fresh.uid]
        assert not run.done()
        await transaction.commit()
        report = await asyncio.wait_for(run, 60)
    finally:
        await writer.close()
    assert report.result == "success", report.error
    assert report.partitions_dropped == [doomed]
    assert await store.pool.fetchval("SELECT to_regclass($1)", doomed) is None
    assert (report.actions_removed, report.aged_out, report.partition_rows_dropped) == (1, 1, 1)
    assert old[120] not in await remaining(store, target("cart"))
    assert await store.pool.fetchval("SELECT count(*) FROM resource_action_traces WHERE request_uid LIKE 'open-%'") == 1


@pytest.mark.parametrize("left", ["detach-pending", "detached"])
async def test_a_drop_stopped_half_way_is_finished_by_the_next_run(
        left: str, store: PostgresStore, batch_pool: asyncpg.Pool, fresh_database: str) -> None:
    now = now_utc()
    await seed(store, target("cart"), now=now, ages=[120])
    doomed = month_name(now - 120 * DAY)
    if left == "detach-pending":
        # A detach cut off while it waited for a writer (here by its lock timeout) leaves the month pending.
        writer, transaction = await open_writer(fresh_database)
        detacher = await asyncpg.connect(fresh_database)
        try:
            await detacher.execute("SET lock_timeout = '100ms'")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await detacher.execute(f"ALTER TABLE resource_action_traces DETACH PARTITION {doomed} CONCURRENTLY")
            await transaction.commit()
        finally:
            await detacher.close()
            await writer.close()
        assert await detach_pending(store, doomed)
    else:
        # A run that stopped between its detach and its drop leaves a plain table of the month.
        await store.pool.execute(f"ALTER TABLE resource_action_traces DETACH PARTITION {doomed}")
        assert await store.pool.fetchval("SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass($1)",
                                         doomed) == 0
    report = await RetentionRunner(batch_pool, cluster_id="default", pause=0).run(now=now)
    assert report.result == "success", report.error
    assert report.partitions_dropped == [doomed] and report.partition_rows_dropped == 1
    assert await store.pool.fetchval("SELECT to_regclass($1)", doomed) is None


async def copy_histories(store: PostgresStore, *, targets: int, now: datetime.datetime,
                         rng: random.Random) -> None:
    """Many targets with varied policies and histories (the planner's input)."""
    strategies = [strategy.value for strategy in Strategy]
    for days in range(0, 80, 10):
        await store.pool.execute("SELECT sg_ensure_partition($1)", now - days * DAY)
    for index in range(targets):
        reference = await store.pool.fetchval(
            "INSERT INTO resource_references (cluster_id, api_version, kind, namespace, name)"
            " VALUES ('default', 'apps/v1', 'Deployment', $1, $2) RETURNING id", f"ns-{index % 4}", f"t-{index}")
        history = await store.pool.fetchval(
            "INSERT INTO action_histories (cluster_id, resource_id, max_actions, max_age_days, compaction_strategy)"
            " VALUES ('default', $1, $2, $3, $4) RETURNING id",
            reference, rng.choice([10, 12, 20]), rng.choice([30, 60, 90]), strategies[index % 3])
        rows = []
        for _ in range(rng.randint(5, 40)):
            at = now - datetime.timedelta(days=rng.uniform(0, 75))
            rows.append(("default", history, uuid.uuid4().hex, at, "restart_pod", AGENT, "automation", {},
                         rng.choice([None, 0.05, 0.2, 0.5, 0.85, 0.95]), rng.random() < 0.1))
        await store.pool.executemany(
            "INSERT INTO resource_action_traces (cluster_id, action_history_id, request_uid, action_timestamp,"
            " action_type, actor, actor_class, event, effectiveness_score, is_pattern_example)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", rows)
        # Rows written around the gate: its counter as the gate leaves it, exact or above (a trace
        # that conflicted, a dropped partition).
        await store.pool.execute("UPDATE action_histories SET action_count = $2 WHERE id = $1",
                                 history, len(rows) + rng.choice([0, 0, 0, 2, 30]))


async def planned(store: PostgresStore, *, now: datetime.datetime) -> set[int]:
    """What the pure planner deletes, target by target, from what is stored."""
    doomed: set[int] = set()
    histories = await store.pool.fetch("SELECT id, max_actions, max_age_days, compaction_strategy FROM action_histories")
    for history in histories:
        rows = await store.pool.fetch(
            "SELECT id, action_timestamp, effectiveness_score::float8 AS score, is_pattern_example"
            " FROM resource_action_traces WHERE action_history_id = $1", history["id"])
        traces = [Trace(id=row["id"], at=row["action_timestamp"], effectiveness=row["score"],
                        is_pattern_example=row["is_pattern_example"]) for row in rows]
        doomed |= plan_deletions(traces, now=now, policy=RetentionPolicy(
            max_actions=history["max_actions"], max_age=datetime.timedelta(days=history["max_age_days"]),
            strategy=Strategy(history["compaction_strategy"])))
    return doomed


async def test_set_based_deletion_removes_exactly_what_the_planner_says_across_many_targets(
        store: PostgresStore, batch_pool: asyncpg.Pool) -> None:
    now = now_utc()
    await copy_histories(store, targets=90, now=now, rng=random.Random(15))
    before = {row["id"] for row in await store.pool.fetch("SELECT id FROM resource_action_traces")}
    doomed = await planned(store, now=now)
    assert len(doomed) > 200 and before - doomed
    # Pages and batches smaller than the work, and not dividing it: a target's plan is split over two deletes.
    report = await RetentionRunner(batch_pool, cluster_id="default", history_page=11, target_batch=7,
                                   delete_batch=13, pause=0, rest=0).run(now=now)
    assert report.result == "success", report.error
    after = {row["id"] for row in await store.pool.fetch("SELECT id FROM resource_action_traces")}
    assert after == before - doomed
    assert report.actions_removed == len(doomed) == sum(report.removed_by_strategy.values())
    assert report.partitions_dropped == []
    assert (await RetentionRunner(batch_pool, cluster_id="default", pause=0).run(now=now)).actions_removed == 0


async def test_untargeted_actions_expire_in_bounded_batches(store: PostgresStore, batch_pool: asyncpg.Pool) -> None:
    now = now_utc()
    ids = await seed(store, None, now=now, ages=[80, 91, 92, 93, 94, 95, 96])
    report = await RetentionRunner(batch_pool, cluster_id="default", delete_batch=2, pause=0).run(now=now)
    assert report.result == "success", report.error
    assert await remaining(store, None) == {ids[80]}
    assert report.actions_removed == report.aged_out == 6


async def test_decisions_issue_no_partition_ddl_and_a_month_without_a_partition_still_lands(
        store: PostgresStore) -> None:
    now = now_utc()
    # Count the calls of sg_ensure_partition: the decision path may make one only for a missing month.
    await store.pool.execute(
        """
        CREATE TABLE ensure_calls (at timestamptz);
        ALTER FUNCTION sg_ensure_partition(timestamptz) RENAME TO sg_ensure_partition_made;
        CREATE FUNCTION sg_ensure_partition(ts timestamptz) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO ensure_calls VALUES (ts); RETURN sg_ensure_partition_made(ts); END; $$;
        """)
    attached = await partitions(store)
    assert {month_name(now), month_name(month_end(now)), month_name(month_end(month_end(now)))} <= attached

    this_month = action(target("cart"), now)
    assert await store.write_effects(plain_decision(this_month))
    assert await store.record_action(action(target("cart"), now - datetime.timedelta(seconds=1)))
    assert await store.pool.fetchval("SELECT count(*) FROM ensure_calls") == 0

    years_ago, far_ahead = now - 800 * DAY, now + 800 * DAY
    assert month_name(years_ago) not in attached and month_name(far_ahead) not in attached
    replayed = action(target("cart"), years_ago)
    assert await store.write_effects(plain_decision(replayed))
    assert await store.write_effects(plain_decision(replayed)) is False          # still exactly once
    assert await store.record_action(action(None, far_ahead)) is not None
    assert await store.pool.fetchval("SELECT count(*) FROM ensure_calls") == 2
    assert {month_name(years_ago), month_name(far_ahead)} <= await partitions(store)
    assert await store.pool.fetchval("SELECT count(*) FROM resource_action_traces WHERE request_uid = $1",
                                     replayed.uid) == 1


async def test_attached_partitions_take_no_lock_a_decision_waits_for(store: PostgresStore, fresh_database: str) -> None:
    """What the partition DDL of a run locks, read from pg_locks inside its transaction: nothing
    that conflicts with a decision's ROW EXCLUSIVE (inserts) or ACCESS SHARE (reads)."""
    connection = await asyncpg.connect(fresh_database)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("SELECT sg_ensure_partition(now() + interval '5 months')")
        held = await store.pool.fetch(
            "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE l.pid = $1 AND c.relname IN ('resource_action_traces', 'action_histories',"
            " 'resource_references', 'admission_decisions')", await connection.fetchval("SELECT pg_backend_pid()"))
        await transaction.rollback()
    finally:
        await connection.close()
    blocking = {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
    assert {row["relname"] for row in held} == {"resource_action_traces"}
    assert not {row["mode"] for row in held} & blocking


async def exact_counts(store: PostgresStore) -> dict[int, tuple[int, int]]:
    """History id → (its counter, its traces counted)."""
    rows = await store.pool.fetch(
        "SELECT h.id, h.action_count, (SELECT count(*) FROM resource_action_traces t"
        " WHERE t.action_history_id = h.id) AS n FROM action_histories h")
    return {row["id"]: (row["action_count"], row["n"]) for row in rows}


async def test_the_history_counter_stays_an_upper_bound_through_replays_deletes_and_drops(
        store: PostgresStore, batch_pool: asyncpg.Pool) -> None:
    now = now_utc()
    on = target("counted")
    recent = [action(on, now - k * DAY) for k in range(14)]
    for event in recent:
        assert await store.write_effects(plain_decision(event))
    old = action(on, now - 150 * DAY)                 # a month retention drops whole
    assert await store.write_effects(plain_decision(old))
    by_transaction = action(on, now - 2 * DAY)
    await store.record_action(by_transaction)
    # Replays of a uid seen before write nothing, on either path, and count nothing.
    assert not await store.write_effects(plain_decision(recent[0]))
    assert not await store.write_effects(plain_decision(old))
    await store.record_action(by_transaction)
    [(counter, n)] = (await exact_counts(store)).values()
    assert counter == n == 16
    # A decision whose trace was already recorded without one: the trace conflicts, the counter
    # errs high.
    assert await store.write_effects(plain_decision(by_transaction))
    [(counter, n)] = (await exact_counts(store)).values()
    assert (counter, n) == (17, 16)

    await policy(store, on, strategy="oldest-first", max_actions=10)
    report = await RetentionRunner(batch_pool, cluster_id="default", pause=0).run(now=now)
    assert report.result == "success", report.error
    assert report.partitions_dropped == [month_name(old.at)]
    assert report.actions_removed == 1 + 5
    [(counter, n)] = (await exact_counts(store)).values()
    # The search recounted 15 (the drop went first) and took the excess off; the 5 deleted by the
    # count rule stay on the counter, which the next run's recount puts right.
    assert (counter, n) == (15, 10)
    report = await RetentionRunner(batch_pool, cluster_id="default", pause=0).run(now=now)
    assert report.result == "success" and report.actions_removed == 0
    [(counter, n)] = (await exact_counts(store)).values()
    assert (counter, n) == (10, 10)

    # A dropped partition leaves the counter high (11 for 10); the search that follows the drop
    # recounts the target and stores the truth.
    older = action(on, now - 200 * DAY)
    assert await store.write_effects(plain_decision(older))
    report = await RetentionRunner(batch_pool, cluster_id="default", pause=0).run(now=now)
    assert report.partitions_dropped == [month_name(older.at)] and report.actions_removed == 1
    [(counter, n)] = (await exact_counts(store)).values()
    assert (counter, n) == (10, 10)
    # One over: recounted, compacted back to its max.
    assert await store.write_effects(plain_decision(action(on, now)))
    report = await RetentionRunner(batch_pool, cluster_id="default", pause=0).run(now=now)
    assert report.result == "success" and report.actions_removed == 1
    [(counter, n)] = (await exact_counts(store)).values()
    assert (counter, n) == (11, 10)


_FULL_COUNT = """
SELECT h.id, s.n FROM action_histories h JOIN LATERAL (
    SELECT count(*) AS n, min(action_timestamp) AS oldest FROM resource_action_traces t
    WHERE t.cluster_id = h.cluster_id AND t.action_history_id = h.id) AS s ON true
WHERE h.cluster_id = $1 AND (s.n > h.max_actions OR s.oldest < $2::timestamptz - make_interval(days => h.max_age_days))
"""


async def test_the_search_finds_exactly_the_targets_a_full_count_finds(
        store: PostgresStore, batch_pool: asyncpg.Pool) -> None:
    now = now_utc()
    await copy_histories(store, targets=150, now=now, rng=random.Random(1512))
    before = await exact_counts(store)
    full = {row["id"]: row["n"] for row in await store.pool.fetch(_FULL_COUNT, "default", now)}
    over = {history for history, (_, n) in before.items() if n > 20}
    aged = set(full) - {history for history, (counter, _) in before.items() if counter > 10}
    assert over and aged and len(full) < len(before)       # every kind of target is in the set
    runner = RetentionRunner(batch_pool, cluster_id="default", history_page=17, pause=0, rest=0)
    found = {target.history_id: target for target in await runner.repository.targets_over_limits(
        now=now, first=min(before), last=max(before))}
    assert set(found) == set(full)
    for history, target in found.items():
        if target.actions > target.max_actions:
            assert target.actions == full[history]
        else:
            assert full[history] <= target.max_actions and target.actions >= full[history]
    after = await exact_counts(store)
    for history, (counter, n) in after.items():
        assert counter >= n
        if before[history][0] > await store.pool.fetchval(
                "SELECT max_actions FROM action_histories WHERE id = $1", history):
            assert counter == n                          # recounted: the exact count stored back


async def test_a_decision_with_its_counter_is_still_one_statement(fresh_database: str) -> None:
    from webhook.store.postgres import _WRITE_PLAIN, _init_connection

    await migrate(fresh_database)
    statements: list[str] = []

    async def init(connection: asyncpg.Connection) -> None:
        await _init_connection(connection)
        connection.add_query_logger(lambda logged: statements.append(logged.query))

    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=1, init=init)
    try:
        store = PostgresStore(pool, cluster_id="default")
        event = action(target("one"), now_utc())
        statements.clear()
        assert await store.write_effects(plain_decision(event))
        assert [query for query in statements if "INSERT" in query or "UPDATE" in query] == [_WRITE_PLAIN]
        assert await pool.fetchval("SELECT action_count FROM action_histories") == 1
    finally:
        await pool.close()


async def test_the_migration_counts_an_existing_install_once(fresh_database: str, tmp_path) -> None:
    from webhook.store.migrate import MIGRATIONS_DIR, migration_files

    for path in migration_files():
        if path.name < "0012":
            (tmp_path / path.name).symlink_to(path)
    await migrate(fresh_database, directory=tmp_path)
    connection = await asyncpg.connect(fresh_database)
    try:
        history = await connection.fetchval(
            "WITH r AS (INSERT INTO resource_references (cluster_id, kind, namespace, name)"
            " VALUES ('default', 'Deployment', 'shop', 'old') RETURNING id)"
            " INSERT INTO action_histories (cluster_id, resource_id) SELECT 'default', id FROM r RETURNING id")
        await connection.executemany(
            "INSERT INTO resource_action_traces (cluster_id, action_history_id, request_uid, action_timestamp,"
            " action_type, actor, actor_class, event) VALUES ('default', $1, $2, now(), 'restart_pod', $3,"
            " 'automation', '{}')", [(history, f"u-{k}", AGENT) for k in range(23)])
        await migrate(fresh_database, directory=MIGRATIONS_DIR)
        assert await connection.fetchval("SELECT action_count FROM action_histories WHERE id = $1", history) == 23
    finally:
        await connection.close()
