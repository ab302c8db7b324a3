"""Every command run beside a serving gate, with the same ``--data-dir`` and no DSN/URL.

The gate owns the embedded stores of that data dir. Each command must find them through the
owner's record, do its work on the gate's own history, and leave: the gate's PostgreSQL and Redis
keep their pids, ``/readyz`` stays ready, and the next review is decided as before. (On the old
main, each of these commands stopped the gate's PostgreSQL as an "orphan" and crashed a minute
or two later, leaving the gate degraded for good.)
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests import reviews
from tests.gateproc import GateProcess, free_port
from tests.stress.embedded_gate import (
    GROWING,
    admit,
    embedded_gate,
    fully_ready,
    owner,
    store_pids,
    traces_by_uid,
)

REPO = pathlib.Path(__file__).resolve().parents[2]
#: A command that reaches the gate's stores ends in seconds; the old failure mode took 60–120s.
COMMAND_DEADLINE = 90


@pytest.fixture(scope="module")
def gate() -> Iterator[GateProcess]:
    with embedded_gate() as process:
        uids: list[str] = []
        admit(process, uids, GROWING[:3], name="beside")
        yield process


@pytest.fixture
def unchanged(gate: GateProcess, request: pytest.FixtureRequest) -> Iterator[None]:
    """The gate's stores are the same processes after the command, and the gate decides as before.

    Each test acts in a namespace of its own: one agent on five workloads of one namespace would be
    a cascading failure, which is not what these tests are about.
    """
    before = store_pids(gate)
    record = owner(gate)
    assert None not in before and fully_ready(gate)
    yield
    assert store_pids(gate) == before, "the command stopped or restarted the gate's stores"
    assert owner(gate) == record
    assert gate.process is not None and gate.process.poll() is None
    assert fully_ready(gate)
    probe = reviews.scale(before=1, after=2, name="after-command", namespace=f"probe-{request.node.name[5:20]}")
    assert gate.decide(probe)["allowed"] is True


def cli(gate: GateProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    env.pop("SAFETY_GATE_POSTGRES_DSN", None)
    env.pop("SAFETY_GATE_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "webhook", *args, "--data-dir", str(gate.data_dir)], cwd=REPO,
                          env=env, input=stdin, capture_output=True, text=True, timeout=COMMAND_DEADLINE)


def test_migrate(gate: GateProcess, unchanged: None) -> None:
    result = cli(gate, "migrate")
    assert result.returncode == 0, result.stderr
    assert "applied 0 migration(s)" in result.stdout


def test_history(gate: GateProcess, unchanged: None) -> None:
    result = cli(gate, "history", "shop/Deployment/beside", "--since", "1h")
    assert result.returncode == 0, result.stderr
    assert "Deployment shop/beside: 3 action(s)" in result.stdout
    assert "replicas 1→2" in result.stdout


def test_explain(gate: GateProcess, unchanged: None, tmp_path: pathlib.Path) -> None:
    gate.decide(reviews.scale(before=3, after=5, name="explained", namespace="explain"))
    gate.decide(reviews.scale(before=5, after=3, name="explained", namespace="explain"))
    proposed = tmp_path / "review.json"
    proposed.write_text(json.dumps(reviews.scale(before=3, after=5, name="explained", namespace="explain")))
    result = cli(gate, "explain", str(proposed), "--json")
    assert result.returncode == 1, result.stderr  # denied: judged on the gate's history
    assert json.loads(result.stdout)["response"]["status"]["code"] == 429


def test_replay_records_into_the_gates_history(gate: GateProcess, unchanged: None, tmp_path: pathlib.Path) -> None:
    bodies = [reviews.scale(before=n, after=n + 1, name="replayed", namespace="replay") for n in range(1, 4)]
    source = tmp_path / "reviews.json"
    source.write_text(json.dumps(bodies))
    result = cli(gate, "replay", str(source), "--json")
    assert result.returncode == 0, result.stderr
    assert [decision["allowed"] for decision in json.loads(result.stdout)] == [True, True, True]
    recorded = traces_by_uid(owner(gate)["postgres_dsn"])
    assert all(recorded.get(body["request"]["uid"]) == 1 for body in bodies)
    # The gate itself sees the replayed history: the next replica change follows from it.
    history = cli(gate, "history", "replay/Deployment/replayed")
    assert "3 action(s)" in history.stdout


def test_alerts_and_approve(gate: GateProcess, unchanged: None) -> None:
    def restart() -> dict:
        return gate.decide(reviews.pipelinerun(action_type="restart_pod", target="loop/Deployment/looping",
                                               alert="KubePodCrashLooping"))

    assert all(restart()["allowed"] for _ in range(3))
    assert restart()["status"]["code"] == 403  # an ineffective loop, escalated
    alert = "loop/deployment-looping-ineffective-loop"

    listed = cli(gate, "alerts", "-A", "--json")
    assert listed.returncode == 0, listed.stderr
    assert alert in {f"{row['namespace']}/{row['name']}" for row in json.loads(listed.stdout)}

    approved = cli(gate, "approve", alert, "--reason", "known fix", "--approved-by", "oncall@example.com")
    assert approved.returncode == 0, approved.stderr
    assert restart()["allowed"] is True  # the serving gate sees the approval the command wrote


def test_retention_run(gate: GateProcess, unchanged: None) -> None:
    result = cli(gate, "retention", "run")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "success" in result.stdout.lower()


def test_mcp_over_stdio(gate: GateProcess, unchanged: None) -> None:
    params = StdioServerParameters(command=sys.executable, cwd=str(REPO),
                                   args=["-m", "webhook", "mcp", "--data-dir", str(gate.data_dir)])

    async def session() -> dict:
        async with Client(params, read_timeout_seconds=60) as client:
            result = await client.call_tool("check_action_history", {
                "namespace": "shop", "resource_kind": "deployment", "resource_name": "beside", "time_range": "1h"})
            assert not result.is_error, result.content
            return result.structured_content

    history = asyncio.run(asyncio.wait_for(session(), COMMAND_DEADLINE))
    assert history["total_actions"] == 3


def test_a_command_on_a_data_dir_whose_owner_died_starts_its_own_stores(tmp_path: pathlib.Path) -> None:
    """A stale record (the owner was SIGKILLed) is not trusted: the command owns the stores, then leaves."""
    data_dir = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"safety-gate-test-stale-{os.getpid()}"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        (data_dir / "stores.json").write_text(json.dumps({
            "pid": 999_999_999, "started": 1.0, "command": "safety-gate serve",
            "postgres_dsn": "postgresql://postgres@127.0.0.1:1/postgres", "redis_url": "redis://127.0.0.1:1/0"}))
        result = subprocess.run([sys.executable, "-m", "webhook", "migrate", "--data-dir", str(data_dir)], cwd=REPO,
                                capture_output=True, text=True, timeout=COMMAND_DEADLINE)
        assert result.returncode == 0, result.stderr
        assert "applied" in result.stdout and "migration(s)" in result.stdout
        assert not (data_dir / "stores.json").exists()  # released on exit
    finally:
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)


def test_a_second_serve_on_the_data_dir_exits_naming_the_owner(gate: GateProcess, unchanged: None) -> None:
    """Two supervisors of one PostgreSQL would fight over it: the second gate refuses, clearly."""
    result = subprocess.run([sys.executable, "-m", "webhook", "serve", "--port", str(free_port()),
                             "--data-dir", str(gate.data_dir)], cwd=REPO, capture_output=True, text=True,
                            timeout=COMMAND_DEADLINE, env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 1
    assert f"pid {gate.process.pid}" in result.stderr and "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr
