"""Part ``decide``: the gate's own CPU per decision, in process, with no HTTP in front.

``Gate.review`` on parsed AdmissionReviews of the load part's mix, against the embedded stores (each
in a process of its own), after a warm-up that puts every target in the cache: first one decision
at a time, then 8 at once. The process's CPU time per decision is the number: unlike a latency it
hardly moves when other work shares the cores, so it compares trees (``PYTHONPATH=... python -m
benchmarks decide`` on each) where a latency run on a busy machine cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import tempfile
import time

import uvloop

from benchmarks import stack
from benchmarks.report import Row
from benchmarks.workload import Workload
from webhook.admission.review import AdmissionRequest, parse_review
from webhook.engine.gate import Gate
from webhook.policy.provider import PolicyProvider
from webhook.server.runtime import CACHE_HORIZON
from webhook.settings import Settings
from webhook.store.cache import RedisCache
from webhook.store.history import HistoryStore
from webhook.store.locks import AdvisoryLocks, open_lock_pool
from webhook.store.migrate import migrate
from webhook.store.outbox import Outbox
from webhook.store.postgres import PostgresStore, create_pool

PART = "decide"
CONCURRENCY = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decide")
    group.add_argument("--decisions", type=int, default=4000, help="measured decisions in each of the two runs")
    group.add_argument("--decide-targets", type=int, default=2000, help="distinct workloads in the mix")


def run_decide(args: argparse.Namespace) -> list[Row]:
    work = pathlib.Path(tempfile.mkdtemp(prefix="sg-bench-decide-"))
    with stack.stores(work) as (postgres, redis):
        return uvloop.run(_measure(dsn=postgres.dsn, redis_url=redis.url, spool=work / "spool",
                                   decisions=args.decisions, targets=args.decide_targets))


async def _measure(*, dsn: str, redis_url: str, spool: pathlib.Path, decisions: int, targets: int) -> list[Row]:
    await migrate(dsn)
    pool = await create_pool(dsn, min_size=0, reset_sessions=False)
    lock_pool = await open_lock_pool(dsn)
    cache = RedisCache.from_url(redis_url, cluster_id="default", horizon=CACHE_HORIZON)
    history = HistoryStore(postgres=PostgresStore(pool, cluster_id="default"), cache=cache,
                           outbox=Outbox(redis=cache.client, stream="sg:default:outbox", spool=spool),
                           locks=AdvisoryLocks(lock_pool, cluster_id="default"))
    gate = Gate(history=history, policies=PolicyProvider(), rules=Settings().actor_rules())
    try:
        workload = Workload(targets=targets)
        warm = [workload.next_review() for _ in range(targets * 2)]
        for body in warm:  # every target's window in the cache, as in a serving gate
            await gate.review(_request(body))
        one_at_a_time = await _run(gate, [_request(workload.next_review()) for _ in range(decisions)],
                                   concurrency=1)
        together = await _run(gate, [_request(workload.next_review()) for _ in range(decisions)],
                              concurrency=CONCURRENCY)
    finally:
        await cache.close()
        await lock_pool.close()
        await pool.close()
    return [Row(PART, "gate CPU per decision, one at a time", one_at_a_time[0], "ms",
                note=f"{decisions} decisions, wall {one_at_a_time[1]:.2f} ms each"),
            Row(PART, f"gate CPU per decision, {CONCURRENCY} at once", together[0], "ms",
                note=f"{decisions} decisions, wall {together[1]:.2f} ms each")]


def _request(body: dict) -> AdmissionRequest:
    return parse_review(json.dumps(body).encode()).request


async def _run(gate: Gate, requests: list[AdmissionRequest], *, concurrency: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per decision."""
    slots = asyncio.Semaphore(concurrency)

    async def one(request: AdmissionRequest) -> None:
        async with slots:
            await gate.review(request)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(request) for request in requests))
    return ((time.process_time() - cpu) * 1000 / len(requests), (time.perf_counter() - wall) * 1000 / len(requests))
