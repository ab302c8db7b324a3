"""Serial equivalence (DESIGN §7) across two Gate/HistoryStore instances on the same stores, each
with its own pools, as two replicas have: Redis up and Redis down."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import pytest

from tests import reviews
from tests.gateproc import free_port
from tests.stress.stores_helpers import gate_on, request_of, store_stack


@contextlib.asynccontextmanager
async def two_replicas(dsn: str, redis_url: str, tmp_path):
    async with store_stack(dsn=dsn, redis_url=redis_url, spool=tmp_path / "a") as first, \
            store_stack(dsn=dsn, redis_url=redis_url, spool=tmp_path / "b", migrated=False) as second:
        yield gate_on(first), gate_on(second)


async def decide_all(gates, bodies) -> list[dict]:
    results = await asyncio.gather(*(gates[i % 2].review(request_of(body)) for i, body in enumerate(bodies)))
    # Each answer with what the gate decided it without, so a failure says which path was taken.
    return [{**result.response["response"], "degraded": result.degraded} for result in results]


def summary(answers: list[dict]) -> list[tuple]:
    return [(a["allowed"], (a.get("status") or {}).get("code"), a["degraded"]) for a in answers]


@pytest.mark.parametrize("redis", ["up", "down"])
async def test_two_replicas_in_process_admit_what_one_would_in_sequence(fresh_database, fresh_redis_url, tmp_path,
                                                                        redis):
    url = fresh_redis_url if redis == "up" else f"redis://127.0.0.1:{free_port()}/0"
    async with two_replicas(fresh_database, url, tmp_path) as gates:
        for before, after in [(3, 5), (5, 3)]:
            assert (await gates[0].review(request_of(reviews.scale(before=before, after=after)))).response[
                "response"]["allowed"]
        reversals = [reviews.scale(before=3, after=5)] + [reviews.scale(before=5, after=3) for _ in range(23)]
        answers = await decide_all(gates, reversals)
        # The first reversal to be decided starts the cooling period; every other one is refused by it.
        assert sum(a["allowed"] for a in answers) == 0, summary(answers)
        assert {a["status"]["code"] for a in answers} == {429}, summary(answers)

        cascade = [reviews.scale(name=f"svc-{i:02d}", namespace="web", before=2, after=3) for i in range(50)]
        answers = await decide_all(gates, cascade)
        assert sum(a["allowed"] for a in answers) == 4, summary(answers)
        assert not any("unchecked" in w for a in answers for w in a.get("warnings") or ()), summary(answers)
        for history in (gates[0].history, gates[1].history):
            assert history.postgres_up is True and history.redis_up is (redis == "up")

    connection = await asyncpg.connect(fresh_database)
    try:
        traced = await connection.fetchval("SELECT count(*) FROM resource_action_traces WHERE namespace = 'web'")
        restrictions = await connection.fetchval("SELECT count(*) FROM restrictions")
    finally:
        await connection.close()
    assert traced == 4
    assert restrictions == 2  # one cooling period on cart, one cascade block on the agent in "web"
