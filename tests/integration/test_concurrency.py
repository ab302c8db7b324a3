"""Issue 3: two gate processes on shared stores decide concurrent requests on one target exactly as
one gate would decide them in sequence, and never let a change through a cooling period."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import asyncpg

from tests import reviews
from tests.sql import fetch

REQUESTS = 24


def create_database(admin_dsn: str) -> str:
    name = f"sg_{uuid.uuid4().hex}"

    async def run():
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(run())
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


def test_two_replicas_decide_like_one_serial_gate(gate_factory, fresh_database, postgres_dsn):
    first, second = gate_factory(name="a"), gate_factory(name="b")
    bodies = [reviews.scale(before=3, after=5) if i % 2 == 0 else reviews.scale(before=5, after=3)
              for i in range(REQUESTS)]
    gates = [first if i % 2 == 0 else second for i in range(REQUESTS)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        # Each thread gets its own HTTPS client: httpx clients are not shared across threads here.
        answers = list(pool.map(lambda pair: post_fresh(*pair), zip(gates, bodies)))
    by_uid = {body["request"]["uid"]: (body, answer) for body, answer in zip(bodies, answers)}

    rows = fetch(fresh_database, "SELECT request_uid, outcome FROM admission_decisions ORDER BY decided_at, id")
    assert len(rows) == REQUESTS
    order = [by_uid[row["request_uid"]][0] for row in rows]
    concurrent_outcomes = [by_uid[row["request_uid"]][1]["allowed"] for row in rows]

    # The same requests, in the order the replicas decided them, through one gate, one at a time.
    serial = gate_factory(name="serial", postgres_dsn=create_database(postgres_dsn),
                          extra_args=["--cluster-id", "serial"])  # shares Redis, not its keys
    serial_outcomes = []
    for body in order:
        replay = reviews.scale(before=body["request"]["oldObject"]["spec"]["replicas"],
                               after=body["request"]["object"]["spec"]["replicas"])
        serial_outcomes.append(serial.decide(replay)["allowed"])
    assert concurrent_outcomes == serial_outcomes

    # No cooling period bypassed: once refused, every later replica change on the target is refused.
    first_refusal = concurrent_outcomes.index(False)
    assert not any(concurrent_outcomes[first_refusal:])
    traces = fetch(fresh_database, "SELECT count(*) AS n FROM resource_action_traces")[0]["n"]
    assert traces == first_refusal
    restrictions = fetch(fresh_database, "SELECT count(*) AS n FROM restrictions")[0]["n"]
    assert restrictions == 1


def post_fresh(gate, body):

    with gate.new_client(timeout=20) as client:
        reply = client.post("/validate", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()["response"]
