"""Part ``history``: the gate with 10 million recorded actions behind it.

Seeds PostgreSQL once (kept in ``~/.cache/safety-gate/bench-pg``, reused with ``--reuse-seed``),
then measures decisions with a cold Redis (every target's history read from PostgreSQL), the
history API per target and cluster-wide, bulk ingest through the gate's own write path, and
one retention run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import pathlib
import random
import shutil
import time
import uuid
from collections.abc import Iterator

import redis

from benchmarks import seed, stack, vegeta
from benchmarks.report import Row
from benchmarks.workload import deployment
from tests import reviews
from tests.gateproc import GateProcess
from webhook.actions.model import ActionEvent, ActorClass
from webhook.retention.runner import RetentionRunner
from webhook.store.effects import Effects
from webhook.store.outbox import Outbox
from webhook.store.postgres import PostgresStore, create_pool

CACHE_DIR = pathlib.Path.home() / ".cache/safety-gate/bench-pg"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("history")
    group.add_argument("--seed-actions", type=int, default=10_000_000)
    group.add_argument("--seed-targets", type=int, default=100_000)
    group.add_argument("--seed-days", type=int, default=90)
    group.add_argument("--reuse-seed", action="store_true",
                       help=f"keep and reuse the seeded database in {CACHE_DIR} (seeded again if it does not match)")
    group.add_argument("--cold-rate", type=int, default=100, help="cold-cache decisions per second")
    group.add_argument("--api-rate", type=int, default=50, help="history API requests per second")
    group.add_argument("--history-seconds", type=float, default=30, help="how long each history measurement runs")
    group.add_argument("--ingest-actions", type=int, default=20_000)


def seed_dir(args: argparse.Namespace) -> pathlib.Path:
    """Where the seeded database of these ``--seed-*`` options is kept (shared with ``retention-load``)."""
    return CACHE_DIR / f"{args.seed_actions}-{args.seed_targets}-{args.seed_days}d"


def run_history(args: argparse.Namespace) -> list[Row]:
    data_dir = seed_dir(args)
    if not args.reuse_seed:
        shutil.rmtree(data_dir, ignore_errors=True)
    rows: list[Row] = []
    with stack.stores(data_dir) as (postgres, redis_server):
        plan = seed.Plan(actions=args.seed_actions, targets=args.seed_targets, days=args.seed_days)
        seeded = asyncio.run(seed.ensure_seeded(postgres.dsn, plan=plan, marker=data_dir / "seeded.json"))
        rows.append(Row("history", "actions stored", seeded.actions, "",
                        note=f"{seeded.targets:,} targets over {plan.days} days"))
        if seeded.seconds is not None:
            rows.append(Row("history", "seeding rate", seeded.actions / seeded.seconds, "actions/s",
                            note=f"took {seeded.seconds / 60:.1f} min (INSERT … SELECT generate_series)"))
        work = data_dir / "run"
        shutil.rmtree(work, ignore_errors=True)
        with stack.gate(name="history", work_dir=work, postgres=postgres, redis=redis_server) as gate:
            rows += _cold_decisions(args, gate=gate, redis_url=redis_server.url, plan=plan, work=work)
            rows += _history_api(args, gate=gate, plan=plan, work=work)
        rows += asyncio.run(_ingest(postgres.dsn, redis_url=redis_server.url, count=args.ingest_actions,
                                    plan=plan, spool=work / "spool.jsonl"))
        rows += asyncio.run(_retention(postgres.dsn))
    return rows


def _cold_decisions(args: argparse.Namespace, *, gate: GateProcess, redis_url: str, plan: seed.Plan,
                    work: pathlib.Path) -> list[Row]:
    redis.Redis.from_url(redis_url).flushall()  # nothing cached: every history comes from PostgreSQL
    count = int(args.cold_rate * args.history_seconds) + args.cold_rate
    picks = random.Random(3).sample(range(plan.targets), min(count, plan.targets))
    report = vegeta.attack(targets=vegeta.posts(url=f"{gate.url}/validate", bodies=_first_touches(picks, plan)),
                           rate=args.cold_rate, seconds=args.history_seconds, root_certs=[gate.ca_file],
                           results=work / "cold.bin")
    note = f"{args.cold_rate}/s, each a target not in Redis; errors {report.errors}"
    return [Row("history", "cold-cache decision p50", report.p50, "ms", note=note),
            Row("history", "cold-cache decision p99", report.p99, "ms", limit=15)]


def _first_touches(picks: list[int], plan: seed.Plan) -> Iterator[bytes]:
    """A replica change on each seeded target, by the agent that changed it before."""
    for index in picks:
        target = plan.target(index)
        old = deployment(name=target.name, namespace=target.namespace, replicas=3, memory="128Mi", restarted_at=None)
        new = deployment(name=target.name, namespace=target.namespace, replicas=4, memory="128Mi", restarted_at=None)
        yield json.dumps(reviews.workload_update(old, new, user=plan.actor(index))).encode()
    raise RuntimeError("ran out of distinct cold targets: lower --cold-rate or --history-seconds")


def _history_api(args: argparse.Namespace, *, gate: GateProcess, plan: seed.Plan, work: pathlib.Path) -> list[Row]:
    headers = {"Authorization": f"Bearer {stack.API_TOKEN}"}
    rng = random.Random(5)

    def per_target() -> Iterator[str]:
        while True:
            target = plan.target(rng.randrange(plan.targets))
            yield (f"{gate.url}/api/v1/history?namespace={target.namespace}&kind=Deployment&name={target.name}"
                   "&limit=50")

    def cluster_wide() -> Iterator[str]:
        while True:
            yield f"{gate.url}/api/v1/history?limit=50"

    rows = []
    for label, urls, limit in (("history API p99, one target", per_target(), 50.0),
                               ("history API p99, cluster-wide page", cluster_wide(), 50.0)):
        report = vegeta.attack(targets=vegeta.gets(urls=urls, headers=headers), rate=args.api_rate,
                               seconds=args.history_seconds, root_certs=[gate.ca_file], results=work / "api.bin")
        rows.append(Row("history", label, report.p99, "ms", limit=limit,
                        note=f"{args.api_rate}/s, limit=50; p50 {report.p50:.1f} ms; errors {report.errors}"))
    return rows


async def _ingest(dsn: str, *, redis_url: str, count: int, plan: seed.Plan, spool: pathlib.Path) -> list[Row]:
    """Admitted actions written by ``PostgresStore.write_effects``: as decisions land (concurrent
    requests, one transaction each) and as the outbox drain replays them (one after another)."""
    pool = await create_pool(dsn, min_size=10, max_size=10)
    try:
        store = PostgresStore(pool, cluster_id=seed.CLUSTER_ID)
        effects = [_effects(plan, i) for i in range(count)]
        queue = list(effects)
        started = time.perf_counter()

        async def writer() -> None:
            while queue:
                await store.write_effects(queue.pop())

        await asyncio.gather(*(writer() for _ in range(8)))
        concurrent = count / (time.perf_counter() - started)
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        outbox = Outbox(redis=client, stream="sg:bench:outbox", spool=spool)
        replayed = [_effects(plan, count + i) for i in range(count // 4)]
        for bundle in replayed:
            await outbox.push(bundle)
        started = time.perf_counter()
        landed = await outbox.drain(store.write_effects, bury=_unreadable)
        drained = landed / (time.perf_counter() - started)
        await client.aclose()
    finally:
        await pool.close()
    return [Row("history", "bulk ingest, decisions landing", concurrent, "actions/s", limit=2000,
                higher_is_better=True, note=f"{count:,} write_effects, 8 concurrent, one transaction each"),
            Row("history", "bulk ingest, outbox drain", drained, "actions/s",
                note=f"{landed:,} replayed one after another by Outbox.drain")]


async def _unreadable(raw: str, reason: str) -> None:
    """The benchmark wrote every entry itself: one it cannot read back is a bug, not a dead letter."""
    raise RuntimeError(f"outbox entry unreadable ({reason}): {raw[:200]}")


def _effects(plan: seed.Plan, n: int) -> Effects:
    index = n % plan.targets
    target = plan.target(index)
    now = datetime.datetime.now(datetime.timezone.utc)
    event = ActionEvent(uid=str(uuid.uuid4()), at=now, target=target, action_type="scale_deployment",
                        actor=plan.actor(index), actor_class=ActorClass.AUTOMATION, replicas_before=3,
                        replicas_after=4)
    return Effects(uid=event.uid, decided_at=now, event=event, record=True, outcome="allowed", allowed=True, code=None,
                   pattern=None, strategy=None, message=None, warnings=(), latency_ms=1.0)


async def _retention(dsn: str) -> list[Row]:
    """One retention run as the gate's job runs it: on the batch pool (no statement timeout)."""
    rows = []
    pool = await create_pool(dsn, min_size=1, max_size=4, command_timeout=None)
    try:
        started = time.perf_counter()
        report = await RetentionRunner(pool, cluster_id=seed.CLUSTER_ID).run()
        took = time.perf_counter() - started
    finally:
        await pool.close()
    rows.append(Row("history", "retention run", took, "s",
                    note=f"{report.result}; {report.actions_removed:,} actions removed, "
                         f"{report.partitions_dropped} partitions dropped {report.error or ''}"[:160]))
    return rows
