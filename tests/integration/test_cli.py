"""Every CLI command against real stores, checked against what the running webhook does.

The CLI runs as ``python -m webhook ...`` subprocesses on the same PostgreSQL database and Redis
the gate uses, so "the same answer as the webhook" is compared on one shared history.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests import reviews

REPO = pathlib.Path(__file__).resolve().parents[2]
TABLES = ("resource_action_traces", "admission_decisions", "restrictions", "oscillation_detections")
SECONDS_LEFT = re.compile(r"\(\d+s left\)")
SPAN_SECONDS = re.compile(r"\bin \d+s\b")  # a pattern formed within a minute: "in 41s", a second later "in 42s"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "webhook", *args], cwd=REPO, env=env, input=stdin,
                          capture_output=True, text=True, timeout=180)


def stores(dsn: str, redis_url: str) -> list[str]:
    return ["--postgres-dsn", dsn, "--redis-url", redis_url]


def counts(dsn: str) -> dict[str, int]:
    async def run() -> dict[str, int]:
        connection = await asyncpg.connect(dsn)
        try:
            return {table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}
        finally:
            await connection.close()

    return asyncio.run(run())


def same_answer(response: dict) -> tuple:
    """What must agree between two answers to one change: allowed, code, message (less the seconds left)."""
    status = response.get("status") or {}
    message = SPAN_SECONDS.sub("in Ns", SECONDS_LEFT.sub("(Ns left)", status.get("message") or ""))
    return response["allowed"], status.get("code"), message


def dry(review: dict) -> dict:
    copy = json.loads(json.dumps(review))
    copy["request"]["dryRun"] = True
    copy["request"]["uid"] = str(uuid.uuid4())
    return copy


def admin(dsn: str, statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture
def another_database(postgres_dsn: str) -> Iterator[str]:
    """A second empty database on the session server, for a replay beside the webhook's."""
    name = f"sg_{uuid.uuid4().hex}"
    admin(postgres_dsn, f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_dsn)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    finally:
        admin(postgres_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flapping_sequence() -> list[dict]:
    """An agent flaps until denied, keeps trying, a person and the HPA step in, a dry run, a bad entry."""
    return [
        reviews.scale(before=3, after=5),
        reviews.scale(before=5, after=3),
        reviews.scale(before=3, after=5),                      # 429: cooling period starts
        reviews.scale(before=3, after=4),                      # 429: refused by the cooling period
        reviews.scale(before=3, after=4, user=reviews.PERSON),  # allowed with the refusal as a warning
        reviews.scale(before=4, after=6, user=reviews.HPA),     # observed: allowed
        reviews.scale(name="api", before=1, after=2, dry_run=True),
        reviews.pipelinerun(action_type="restart_pod", target="shop/Deployment/api"),
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": "nope"}},
    ]


def timeless(message: str) -> str:
    """A replay happens later than the webhook's run: the end of a cooling period moves with it."""
    return TIMESTAMP.sub("<time>", SPAN_SECONDS.sub("in Ns", SECONDS_LEFT.sub("(Ns left)", message)))


def webhook_answers(gate, sequence: list[dict]) -> list[tuple]:
    answers = []
    for review in sequence:
        reply = gate.post(review)
        if reply.status_code == 400:
            answers.append((None, 400, ""))
        else:
            allowed, code, message = same_answer(reply.json()["response"])
            answers.append((allowed, code, timeless(message)))
    return answers


def replay_answers(rows: list[dict]) -> list[tuple]:
    answers = []
    for row in rows:
        if row["code"] == 400:
            answers.append((None, 400, ""))
        elif row["allowed"]:
            answers.append((True, None, ""))
        else:
            answers.append((False, row["code"], timeless(row["message"])))
    return answers


# --- history ----------------------------------------------------------------------------------


def test_history_shows_the_recorded_actions(gate, fresh_database):
    gate.decide(reviews.scale(before=3, after=5))
    gate.decide(reviews.scale(before=5, after=3, user=reviews.HPA))
    gate.decide(reviews.scale(name="api", before=1, after=2))
    result = cli("history", "shop/deployment/cart", "--since", "1h", "--postgres-dsn", fresh_database)
    assert result.returncode == 0, result.stderr
    assert "Deployment shop/cart: 2 action(s) in the last 1h" in result.stdout
    assert "replicas 3→5" in result.stdout and "replicas 5→3" in result.stdout
    assert reviews.HPA in result.stdout and reviews.AGENT in result.stdout
    bad = cli("history", "cart", "--postgres-dsn", fresh_database)
    assert bad.returncode == 2 and "NAMESPACE/KIND/NAME" in bad.stderr


# --- explain ----------------------------------------------------------------------------------


def test_explain_gives_the_webhooks_answer_and_records_nothing(gate, fresh_database, fresh_redis_url, tmp_path):
    gate.decide(reviews.scale(before=3, after=5))
    gate.decide(reviews.scale(before=5, after=3))
    proposed = reviews.scale(before=3, after=5)
    path = tmp_path / "review.json"
    path.write_text(json.dumps(proposed))
    before = counts(fresh_database)

    result = cli("explain", str(path), "--json", *stores(fresh_database, fresh_redis_url))
    assert result.returncode == 1, result.stderr       # denied
    explained = json.loads(result.stdout)
    assert explained["kind"] == "AdmissionReview" and explained["response"]["uid"] == proposed["request"]["uid"]
    assert counts(fresh_database) == before            # explain recorded nothing

    webhook = gate.decide(dry(proposed))
    assert same_answer(explained["response"]) == same_answer(webhook)
    assert explained["response"]["status"]["code"] == 429

    # The rich rendering, from stdin, shows the verdict with its evidence.
    shown = cli("explain", "-", *stores(fresh_database, fresh_redis_url), stdin=json.dumps(proposed))
    assert shown.returncode == 1
    assert "DENIED 429" in shown.stdout and "scale-oscillation" in shown.stdout
    assert "evidence" in shown.stdout and "replicas 5→3" in shown.stdout
    assert counts(fresh_database) == before

    # The real request is answered the same way (and only the webhook records it).
    real = gate.decide(proposed)
    assert same_answer(real) == same_answer(explained["response"])


def test_explain_exits_0_for_an_allowed_change_and_2_for_a_bad_file(gate, fresh_database, fresh_redis_url, tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(reviews.scale(name="fresh", before=1, after=2)))
    result = cli("explain", str(path), *stores(fresh_database, fresh_redis_url))
    assert result.returncode == 0, result.stderr
    assert "ALLOWED" in result.stdout
    path.write_text("{not json")
    bad = cli("explain", str(path), *stores(fresh_database, fresh_redis_url))
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr


# --- replay -----------------------------------------------------------------------------------


def test_replay_prints_the_webhooks_timeline_and_records_like_it(gate, fresh_database, another_database,
                                                                  fresh_redis_url, tmp_path):
    sequence = flapping_sequence()
    expected = webhook_answers(gate, sequence)
    assert [a[1] for a in expected] == [None, None, 429, 429, None, None, None, None, 400]

    path = tmp_path / "sequence.json"
    path.write_text(json.dumps(sequence))
    # Another database, and the same Redis under another cluster id so no cached key is shared.
    replayed = cli("replay", str(path), "--json", "--postgres-dsn", another_database,
                   "--redis-url", fresh_redis_url, "--cluster-id", "replay")
    assert replayed.returncode == 0, replayed.stderr
    rows = json.loads(replayed.stdout)
    assert [row["index"] for row in rows] == list(range(1, len(sequence) + 1))
    assert replay_answers(rows) == expected
    assert [row["outcome"] for row in rows] == ["allow", "allow", "deny", "deny", "warn", "allow", "allow",
                                                "allow", "bad-request"]
    # Recorded as the webhook records: the same admitted actions and decisions.
    webhook_counts = counts(fresh_database)
    assert counts(another_database) == webhook_counts
    assert webhook_counts["resource_action_traces"] == 5  # 2 agent, person, HPA, the PipelineRun


def test_replay_fresh_uses_a_throwaway_database_and_prints_a_timeline(gate, fresh_database, fresh_redis_url,
                                                                       tmp_path):
    sequence = [reviews.scale(before=3, after=5), reviews.scale(before=5, after=3), reviews.scale(before=3, after=5)]
    expected = webhook_answers(gate, sequence)
    before = counts(fresh_database)
    path = tmp_path / "sequence.jsonl"
    path.write_text("\n".join(json.dumps(review) for review in sequence) + "\n")
    args = ("replay", str(path), "--fresh", *stores(fresh_database, fresh_redis_url))
    rows = json.loads(cli(*args, "--json").stdout)
    assert replay_answers(rows) == expected
    assert counts(fresh_database) == before  # the given stores were not touched
    table = cli(*args)
    assert table.returncode == 0, table.stderr
    assert "throwaway database" in table.stdout
    assert "denied 429" in table.stdout and table.stdout.count("allowed") >= 2
    assert "3 review(s): 2 allowed, 1 denied, 0 malformed" in table.stdout


# --- alerts -----------------------------------------------------------------------------------


def test_alerts_lists_the_detection_from_postgresql(gate, fresh_database):
    for before, after in [(3, 5), (5, 3), (3, 5), (3, 4)]:
        gate.decide(reviews.scale(before=before, after=after))
    rows = json.loads(cli("alerts", "-A", "--json", "--postgres-dsn", fresh_database).stdout)
    assert rows == [{
        "namespace": "shop", "name": "deployment-cart-scale-oscillation", "target": "Deployment/cart",
        "pattern": "scale-oscillation", "severity": "medium", "phase": "Active", "until": rows[0]["until"],
        "occurrences": 1, "denied": 2, "warned": 0,
    }]
    assert rows[0]["until"].endswith("Z")
    table = cli("alerts", "-n", "shop", "--postgres-dsn", fresh_database)
    assert table.returncode == 0, table.stderr
    for column in ("NAMESPACE", "NAME", "TARGET", "PATTERN", "SEVERITY", "PHASE", "UNTIL", "OCCURRENCES", "DENIED",
                   "WARNED"):
        assert column in table.stdout
    assert "deployment-cart-scale-oscillation" in table.stdout and "Deployment/cart" in table.stdout
    elsewhere = cli("alerts", "-n", "other", "--json", "--postgres-dsn", fresh_database)
    assert json.loads(elsewhere.stdout) == []


# --- approve ----------------------------------------------------------------------------------


def test_approve_lets_the_next_escalated_action_through_once(gate, fresh_database):
    def restart() -> dict:
        return gate.decide(reviews.pipelinerun(action_type="restart_pod", alert="KubePodCrashLooping"))

    # The same restart for the same alert, over and over: the 4th is an ineffective loop, escalated.
    assert all(restart()["allowed"] for _ in range(3))
    escalated = restart()
    assert escalated["allowed"] is False and escalated["status"]["code"] == 403
    alert = "shop/deployment-cart-ineffective-loop"
    assert alert in escalated["status"]["message"]
    assert restart()["status"]["code"] == 403   # still escalated until someone approves

    result = cli("approve", alert, "--reason", "restarts are the known fix until the patch ships",
                 "--approved-by", "oncall@example.com", "--postgres-dsn", fresh_database)
    assert result.returncode == 0, result.stderr
    assert f"approved {alert}" in result.stdout

    approved = restart()
    assert approved["allowed"] is True
    assert any("approval of oncall@example.com" in w for w in approved["warnings"])
    again = restart()
    assert again["allowed"] is False and again["status"]["code"] == 403  # once only

    missing = cli("approve", "shop/no-such-alert", "--reason", "x", "--postgres-dsn", fresh_database)
    assert missing.returncode == 1 and "no detection named shop/no-such-alert" in missing.stderr
