"""Concurrent storms against real gate processes with each store down (issue 12, items 1 and 11).

DESIGN §7: replicas deciding concurrently never admit more than one replica deciding the same
requests in sequence would. These storms are the shapes that broke it: many reversals on a target
already in a cooling period, and one agent acting on many workloads at once (the cascading-failure
budget). Each storm runs once with the stores up and once with a store down, on one replica and on
two, and is compared with the same requests decided one at a time.
"""

from __future__ import annotations

import asyncio
import pathlib
import ssl
from collections.abc import Iterator

import httpx
import pytest

from tests import reviews
from tests.gateproc import GateProcess, free_port
from tests.polling import wait_until
from tests.sql import fetch

REVERSALS = 12
CASCADE = 50


@pytest.fixture
def gates(tmp_path: pathlib.Path, fresh_database: str, fresh_redis_url: str) -> Iterator:
    """``start(name, *, redis="up"|"down", **kwargs)``: gate processes on one fresh database."""
    started: list[GateProcess] = []
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: Redis is down

    def start(name: str = "gate", *, redis: str = "up", **kwargs) -> GateProcess:
        kwargs.setdefault("postgres_dsn", fresh_database)
        kwargs.setdefault("redis_url", fresh_redis_url if redis == "up" else dead_redis)
        gate = GateProcess(data_dir=tmp_path / name, **kwargs)
        started.append(gate)
        return gate.start()

    yield start
    for gate in started:
        gate.stop()


async def _storm(pairs: list[tuple[GateProcess, dict]]) -> list[dict]:
    """POST every body at once (each gate its own HTTP/1.1 connection pool)."""
    clients: dict[int, httpx.AsyncClient] = {}
    try:
        for gate, _ in pairs:
            if id(gate) not in clients:
                clients[id(gate)] = httpx.AsyncClient(
                    base_url=gate.url, timeout=30, verify=ssl.create_default_context(cafile=str(gate.ca_file)),
                    limits=httpx.Limits(max_connections=len(pairs), max_keepalive_connections=len(pairs)))

        async def post(gate: GateProcess, body: dict) -> dict:
            reply = await clients[id(gate)].post("/validate", json=body)
            assert reply.status_code == 200, reply.text
            return reply.json()["response"]

        return await asyncio.gather(*(post(gate, body) for gate, body in pairs))
    finally:
        for client in clients.values():
            await client.aclose()


def storm(pairs: list[tuple[GateProcess, dict]]) -> list[dict]:
    return asyncio.run(_storm(pairs))


def unchecked(answer: dict) -> bool:
    return any("unchecked" in warning for warning in answer.get("warnings") or ())


def traces(dsn: str) -> dict[str, int]:
    rows = fetch(dsn, "SELECT request_uid, count(*) AS n FROM resource_action_traces GROUP BY request_uid")
    return {row["request_uid"]: row["n"] for row in rows}


@pytest.mark.parametrize("redis", ["up", "down"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_reversals_storm_on_a_target_in_a_cooling_period_admits_none(gates, fresh_database, redis, replicas):
    first = gates("a", redis=redis)
    pool = [first] + ([gates("b", redis=redis)] if replicas == 2 else [])
    for before, after in [(3, 5), (5, 3)]:
        assert first.decide(reviews.scale(before=before, after=after))["allowed"] is True
    opened = first.decide(reviews.scale(before=3, after=5))
    assert opened["allowed"] is False and opened["status"]["code"] == 429  # the cooling period starts

    bodies = [reviews.scale(before=5, after=3) for _ in range(REVERSALS * replicas)]  # 12 on each replica
    answers = storm([(pool[i % len(pool)], body) for i, body in enumerate(bodies)])

    # Serially every one of them is refused by the cooling period; so it must be concurrently.
    assert [a for a in answers if a["allowed"]] == []
    assert not any(unchecked(a) for a in answers)
    assert {a["status"]["code"] for a in answers} == {429}
    recorded = traces(fresh_database)
    assert not recorded.keys() & {b["request"]["uid"] for b in bodies}


def cascade_bodies(namespace: str = "shop") -> list[dict]:
    return [reviews.scale(name=f"svc-{i:02d}", namespace=namespace, before=2, after=3) for i in range(CASCADE)]


def serial_admissions(gates, postgres_dsn: str, bodies: list[dict], *, redis: str) -> list[bool]:
    """The same requests through one gate, one at a time, on a database of their own."""
    from tests.integration.test_concurrency import create_database

    serial = gates("serial", redis=redis, postgres_dsn=create_database(postgres_dsn),
                   extra_args=["--cluster-id", "serial"])
    return [serial.decide(reviews.scale(name=b["request"]["name"], before=2, after=3))["allowed"] for b in bodies]


@pytest.mark.parametrize("redis", ["up", "down"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_cascade_storm_admits_exactly_the_serial_budget(gates, fresh_database, postgres_dsn, redis, replicas):
    pool = [gates("a", redis=redis)] + ([gates("b", redis=redis)] if replicas == 2 else [])
    bodies = cascade_bodies()
    answers = storm([(pool[i % len(pool)], body) for i, body in enumerate(bodies)])

    admitted = [body["request"]["uid"] for body, answer in zip(bodies, answers) if answer["allowed"]]
    assert not any(unchecked(a) for a in answers)
    serial = serial_admissions(gates, postgres_dsn, bodies, redis=redis)
    assert len(admitted) == sum(serial) == 4
    # Every admitted action is recorded once; no refused one is.
    recorded = traces(fresh_database)
    assert set(recorded) == set(admitted) and set(recorded.values()) == {1}


def postgres_down(gate: GateProcess) -> bool:
    return gate.client.get("/readyz").json()["stores"]["postgres"] == "down"


@pytest.mark.parametrize("replicas", [1, 2])
def test_storms_with_postgres_down_admit_the_serial_result_and_land_once(
        tmp_path, embedded_postgres_factory, fresh_redis_url, replicas):
    """PostgreSQL down: decisions come from the cache and the outbox, locks from Redis. The cooling
    period formed before the outage holds, the cascade budget counts what waits in the outbox, and
    everything admitted reaches PostgreSQL exactly once when it returns."""
    postgres = embedded_postgres_factory()
    pool = []
    for name in ["a", "b"][:replicas]:
        gate = GateProcess(data_dir=tmp_path / name, postgres_dsn=postgres.dsn, redis_url=fresh_redis_url)
        pool.append(gate.start())
    try:
        first = pool[0]
        for before, after in [(3, 5), (5, 3)]:
            assert first.decide(reviews.scale(before=before, after=after))["allowed"] is True
        assert first.decide(reviews.scale(before=3, after=5))["status"]["code"] == 429  # cooling period
        postgres.stop()
        for gate in pool:
            wait_until(lambda gate=gate: postgres_down(gate), what="the gate to see postgres down")

        reversals = [reviews.scale(before=5, after=3) for _ in range(REVERSALS)]
        answers = storm([(pool[i % len(pool)], body) for i, body in enumerate(reversals)])
        assert [a for a in answers if a["allowed"]] == [] and {a["status"]["code"] for a in answers} == {429}

        bodies = cascade_bodies("web")  # a namespace of its own: the agent's budget there is untouched
        answers = storm([(pool[i % len(pool)], body) for i, body in enumerate(bodies)])
        admitted = [body["request"]["uid"] for body, answer in zip(bodies, answers) if answer["allowed"]]
        assert len(admitted) == 4 and not any(unchecked(a) for a in answers)

        postgres.start()
        wait_until(lambda: set(admitted) <= set(traces(postgres.dsn)), what="the outbox to drain")
        recorded = traces(postgres.dsn)
        assert all(recorded[uid] == 1 for uid in admitted)
        assert not recorded.keys() & {b["request"]["uid"] for b in reversals}
        assert not recorded.keys() & ({b["request"]["uid"] for b in bodies} - set(admitted))
    finally:
        for gate in pool:
            gate.stop()
