"""``safety-gate serve --workers 2``: one pod, two serving processes (issue 15, throughput per pod).

Each worker is a full gate like a replica, so every correctness rule of DESIGN §7 must hold across
the two exactly as across two replicas. The workers share the port and the kernel spreads new
connections over them; a test learns which worker holds a connection from its ``/healthz``
(``worker.pid``) and then sends its reviews on that same keep-alive connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
from collections import Counter
from collections.abc import Iterator

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import reviews
from tests.gateproc import GateProcess
from tests.polling import wait_until
from tests.sql import fetch
from tests.stress.embedded_gate import embedded_gate, store_pids
from webhook.cli.serve import SHUTDOWN_BOUND_SECONDS

WORKERS = ["--workers", "2"]
#: New connections tried to reach both workers: the kernel hashes each to one of two sockets, so
#: missing one worker 200 times in a row has probability 2^-199.
CONNECTION_TRIES = 200


def worker_pids(gate: GateProcess) -> set[int]:
    """The parent's live worker processes (its other children are the embedded stores)."""
    assert gate.process is not None
    pids = set()
    for child in psutil.Process(gate.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "webhook.cli.workers" in child.cmdline():
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


def answering_worker(client: httpx.Client) -> int:
    """The pid of the worker holding ``client``'s connection (kept alive for what follows)."""
    reply = client.get("/healthz")
    assert reply.status_code == 200, reply.text
    return reply.json()["worker"]["pid"]


def reach_every_worker(gate: GateProcess, *, count: int = 2) -> set[int]:
    """Open new connections until ``count`` distinct workers answered; their pids."""
    seen: set[int] = set()
    for _ in range(CONNECTION_TRIES):
        with gate.new_client(timeout=30) as client:  # a worker still starting accepts late, not never
            seen.add(answering_worker(client))
        if len(seen) == count:
            return seen
    raise AssertionError(f"only workers {seen} answered {CONNECTION_TRIES} new connections")


def admission_requests(text: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "safety_gate_admission_requests" for sample in family.samples
               if sample.name == "safety_gate_admission_requests_total")


def traces(dsn: str) -> dict[str, int]:
    rows = fetch(dsn, "SELECT request_uid, count(*) AS n FROM resource_action_traces GROUP BY request_uid")
    return {row["request_uid"]: row["n"] for row in rows}


@pytest.fixture
def two_workers(gate_factory) -> GateProcess:
    gate = gate_factory(extra_args=WORKERS)
    reach_every_worker(gate)  # both are serving, not only the one that answered /readyz first
    return gate


def test_two_worker_processes_serve_the_port_and_answer_validate(two_workers):
    gate = two_workers
    answered = reach_every_worker(gate)
    assert answered == worker_pids(gate) and len(answered) == 2  # the parent's two children, no one else
    assert gate.process is not None and gate.process.pid not in answered  # the parent serves nothing itself
    with gate.new_client() as client:
        indexes = {client.get("/healthz").json()["worker"]["index"]}
    assert indexes <= {0, 1}
    answer = gate.decide(reviews.scale(before=2, after=3))
    assert answer["allowed"] is True


def test_metrics_report_the_pods_totals(two_workers):
    """Each review goes to a known worker; either worker's /metrics counts all of them."""
    gate = two_workers
    decided_by: Counter[int] = Counter()
    reviews_sent = 0
    for _ in range(CONNECTION_TRIES):
        with gate.new_client() as client:
            pid = answering_worker(client)
            # one workload that only ever grows: always allowed, never an oscillation or a cascade
            body = reviews.scale(before=reviews_sent + 1, after=reviews_sent + 2)
            reply = client.post("/validate", json=body)
            assert reply.status_code == 200 and reply.json()["response"]["allowed"] is True, reply.text
            decided_by[pid] += 1
            reviews_sent += 1
        if reviews_sent >= 20 and len(decided_by) == 2:
            break
    assert len(decided_by) == 2, decided_by  # both workers decided some

    scraped: dict[int, float] = {}
    for _ in range(CONNECTION_TRIES):
        with gate.new_client() as client:
            pid = answering_worker(client)
            scraped[pid] = admission_requests(client.get("/metrics").text)
        if len(scraped) == 2:
            break
    assert scraped == {pid: float(reviews_sent) for pid in decided_by}


async def _storm_over_known_workers(gate: GateProcess, bodies: list[dict]) -> tuple[list[dict], set[int]]:
    """One connection per body, each pinned to the worker that answered its /healthz; then every
    body at once. Returns the answers and the workers that decided them."""
    context = ssl.create_default_context(cafile=str(gate.ca_file))
    clients = [httpx.AsyncClient(base_url=gate.url, verify=context, timeout=30,
                                 limits=httpx.Limits(max_connections=1)) for _ in bodies]
    try:
        pids = set()
        for client in clients:
            reply = await client.get("/healthz")
            pids.add(reply.json()["worker"]["pid"])

        async def post(client: httpx.AsyncClient, body: dict) -> dict:
            reply = await client.post("/validate", json=body)
            assert reply.status_code == 200, reply.text
            return reply.json()["response"]

        answers = await asyncio.gather(*(post(client, body) for client, body in zip(clients, bodies, strict=True)))
        return list(answers), pids
    finally:
        for client in clients:
            await client.aclose()


def test_reversals_on_a_target_in_a_cooling_period_admit_none_across_workers(two_workers, fresh_database):
    """As across two replicas (tests/stress/test_storms.py): serially each reversal is refused by the
    cooling period, so concurrently over both workers each must be."""
    gate = two_workers
    for before, after in [(3, 5), (5, 3)]:
        assert gate.decide(reviews.scale(before=before, after=after))["allowed"] is True
    opened = gate.decide(reviews.scale(before=3, after=5))
    assert opened["allowed"] is False and opened["status"]["code"] == 429

    bodies = [reviews.scale(before=5, after=3) for _ in range(24)]
    answers, pids = asyncio.run(_storm_over_known_workers(gate, bodies))

    assert len(pids) == 2  # the storm really went to both workers
    assert [a for a in answers if a["allowed"]] == []
    assert {a["status"]["code"] for a in answers} == {429}
    assert not traces(fresh_database).keys() & {b["request"]["uid"] for b in bodies}


def test_cascade_over_both_workers_admits_the_serial_budget_each_recorded_once(two_workers, fresh_database):
    """One agent scaling 50 workloads of a namespace at once: the cascading-failure budget admits
    4, the number one gate deciding them in sequence admits (compared serially in
    tests/stress/test_storms.py), and each admitted action is recorded exactly once."""
    gate = two_workers
    bodies = [reviews.scale(name=f"svc-{i:02d}", namespace="shop", before=2, after=3) for i in range(50)]
    answers, pids = asyncio.run(_storm_over_known_workers(gate, bodies))

    assert len(pids) == 2
    assert not any("unchecked" in w for a in answers for w in a.get("warnings") or ())
    admitted = {body["request"]["uid"] for body, answer in zip(bodies, answers, strict=True) if answer["allowed"]}
    assert len(admitted) == 4
    recorded = wait_until(lambda: traces(fresh_database) if set(traces(fresh_database)) >= admitted else None,
                          what="the admitted actions in PostgreSQL")
    assert set(recorded) == admitted and set(recorded.values()) == {1}


@pytest.fixture
def embedded_two_workers() -> Iterator[GateProcess]:
    """A pod as a new user runs it: no DSN/URL, so the parent starts the embedded stores once and
    hands both workers their addresses. Outside pytest's basetemp (see tests/conftest.py)."""
    with embedded_gate(extra_args=WORKERS) as gate:
        yield gate


def test_a_killed_worker_is_restarted_and_sigterm_stops_the_pod_within_the_bound(embedded_two_workers):
    gate = embedded_two_workers
    first = reach_every_worker(gate)
    victim = sorted(first)[0]
    os.kill(victim, signal.SIGKILL)

    def replaced() -> set[int] | None:
        pids = worker_pids(gate)
        return pids if len(pids) == 2 and victim not in pids else None

    now = wait_until(replaced, what="a worker in place of the killed one")
    assert reach_every_worker(gate) == now  # the new worker serves its share of the port
    assert gate.decide(reviews.scale(before=2, after=3))["allowed"] is True
    assert f"(pid {victim}) exited with SIGKILL" in gate.log_path.read_text()

    assert gate.process is not None
    stores = [pid for pid in store_pids(gate) if pid is not None]
    assert len(stores) == 2  # one PostgreSQL and one Redis for the pod, the parent's
    os.kill(gate.process.pid, signal.SIGTERM)  # the parent only, as the kubelet does
    try:
        code = gate.process.wait(timeout=SHUTDOWN_BOUND_SECONDS + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"safety-gate still running {SHUTDOWN_BOUND_SECONDS + 5:.0f}s after SIGTERM:\n{gate.log()}")
    assert code == 0, gate.log()
    assert not [pid for pid in [*now, *stores] if running(pid)]
    assert "worker 0 stopped after SIGTERM" in gate.log_path.read_text() and "worker 1 stopped after SIGTERM" in gate.log_path.read_text()


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_port_another_process_listens_on_is_refused_not_shared(tmp_path, fresh_database, fresh_redis_url):
    """SO_REUSEPORT alone would let the workers join another listener's port and split its
    connections with it; the parent refuses the port instead, in one line, as one process does."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        gate = GateProcess(data_dir=tmp_path / "gate", postgres_dsn=fresh_database, redis_url=fresh_redis_url,
                           port=other.getsockname()[1], extra_args=WORKERS)
        with pytest.raises(RuntimeError, match="exited with 1") as refused:
            gate.start()
    assert "cannot listen on 127.0.0.1" in str(refused.value)
