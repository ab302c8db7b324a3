"""``safety-gate mcp`` over stdio, driven by the SDK's own client, on the stores a running gate uses.

The server is spawned as ``python -m webhook mcp --postgres-dsn ... --redis-url ...``; the history
is made by the webhook, and ``validate_action_safety`` must give the webhook's answer to the same
change while leaving the history exactly as it was.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import sys
from typing import Any

import asyncpg
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests import reviews
from webhook.policy.model import PatternType

REPO = pathlib.Path(__file__).resolve().parents[2]
TABLES = ("resource_action_traces", "admission_decisions", "restrictions", "oscillation_detections")
TOOLS = {"check_action_history", "detect_oscillation_patterns", "get_action_effectiveness", "validate_action_safety"}
SECONDS_LEFT = re.compile(r"\(\d+s left\)|\bin \d+s\b")  # and spans under a minute, said in seconds


def run(coroutine):
    return asyncio.run(coroutine)


async def counts(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        return {table: await connection.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}
    finally:
        await connection.close()


async def execute(dsn: str, sql: str, *args: Any) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


def server(dsn: str, redis_url: str, data_dir: pathlib.Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, cwd=str(REPO),
        args=["-m", "webhook", "mcp", "--postgres-dsn", dsn, "--redis-url", redis_url, "--data-dir", str(data_dir)],
    )


async def call(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    # The text content carries the same JSON, for clients that ignore structured content.
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def answer(response: dict) -> tuple:
    status = response.get("status") or {}
    return response["allowed"], status.get("code"), SECONDS_LEFT.sub("", status.get("message") or "")


def test_the_four_tools_over_stdio_agree_with_the_webhook(gate, fresh_database, fresh_redis_url, tmp_path):
    gate.decide(reviews.scale(before=3, after=5))
    gate.decide(reviews.scale(before=5, after=3))
    proposed = reviews.scale(before=3, after=5, dry_run=True)
    webhook = gate.decide(proposed)
    assert webhook["status"]["code"] == 429

    async def session() -> None:
        async with Client(server(fresh_database, fresh_redis_url, tmp_path / "mcp"), read_timeout_seconds=60) as client:
            listed = await client.list_tools()
            assert {tool.name for tool in listed.tools} == TOOLS
            assert len(listed.tools) == 4
            schemas = {tool.name: tool.input_schema for tool in listed.tools}
            assert set(schemas["check_action_history"]["required"]) == {"namespace", "resource_kind", "resource_name"}
            assert "time_range" in schemas["check_action_history"]["properties"]
            assert {"namespace", "resource_name", "pattern_types"} <= set(schemas["detect_oscillation_patterns"]["properties"])
            assert {"action_type", "scope", "time_period"} <= set(schemas["get_action_effectiveness"]["properties"])
            assert {"namespace", "resource_name", "proposed_action", "current_state"} <= set(
                schemas["validate_action_safety"]["properties"])

            # validate_action_safety: the webhook's verdict for the same change, and nothing recorded.
            before = await counts(fresh_database)
            verdict = await call(client, "validate_action_safety", namespace="shop", resource_name="cart",
                                 proposed_action="scale_deployment", current_state={"replicas": 3},
                                 target_replicas=5, actor=reviews.AGENT)
            assert verdict["request_kind"] == "scale-subresource"
            assert (verdict["allowed"], verdict["code"], SECONDS_LEFT.sub("", verdict["message"])) == answer(webhook)
            assert verdict["pattern"] == "scale-oscillation" and verdict["safe"] is False
            assert verdict["findings"][0]["evidence"][-1]["summary"] == "replicas 3→5"
            # A person gets the person's answer (allowed with warnings), as from the webhook.
            person = await call(client, "validate_action_safety", namespace="shop", resource_name="cart",
                                proposed_action="scale_deployment", current_state={"replicas": 3, "target_replicas": 5},
                                actor=reviews.PERSON)
            from_webhook = gate.decide(reviews.scale(before=3, after=5, user=reviews.PERSON, dry_run=True))
            assert (person["allowed"], person["warnings"]) == (True, from_webhook["warnings"])
            # A first restart elsewhere is fine.
            fine = await call(client, "validate_action_safety", namespace="shop", resource_name="api",
                              proposed_action="restart_deployment", current_state={})
            assert fine["request_kind"] == "pipelinerun" and fine["allowed"] is True and fine["code"] is None
            assert await counts(fresh_database) == before

            # check_action_history: the two admitted changes, oldest first.
            history = await call(client, "check_action_history", namespace="shop", resource_kind="deployment",
                                 resource_name="cart", time_range="1h")
            assert history["resource"] == {"namespace": "shop", "kind": "Deployment", "name": "cart"}
            assert history["total_actions"] == 2
            assert [a["change"] for a in history["actions"]] == ["replicas 3→5", "replicas 5→3"]
            assert history["patterns"] == []   # one reversal: no pattern in the admitted history
            assert history["effectiveness_summary"]["actions"] == 2
            assert history["effectiveness_summary"]["assessed"] == 0

            # The webhook now refuses the real reversal: a detection exists, which the tools report.
            assert gate.decide(reviews.scale(before=3, after=5))["status"]["code"] == 429
            patterns = await call(client, "detect_oscillation_patterns", namespace="shop", resource_name="cart")
            by_type = {p["pattern_type"]: p for p in patterns["patterns"]}
            assert set(by_type) == {pattern.value for pattern in PatternType}  # every registered pattern
            assert patterns["oscillation_detected"] is True
            scale = by_type["scale-oscillation"]
            assert scale["detected"] is True and scale["checked"] is True
            assert [d["alert"] for d in scale["gate_detections"]] == ["shop/deployment-cart-scale-oscillation"]
            assert scale["gate_detections"][0]["denied_requests"] == 1
            assert not any(by_type[p]["detected"] for p in by_type if p != "scale-oscillation")
            only = await call(client, "detect_oscillation_patterns", namespace="shop", resource_name="cart",
                              pattern_types=["controller-fight"])
            assert [p["pattern_type"] for p in only["patterns"]] == ["controller-fight"]
            assert only["oscillation_detected"] is False

            # get_action_effectiveness: mean and sample size of the recorded scores.
            await execute(fresh_database, "UPDATE resource_action_traces SET effectiveness_score = CASE"
                          " WHEN replicas_after = 5 THEN 0.2 ELSE 0.6 END")
            scores = await call(client, "get_action_effectiveness", action_type="scale_deployment",
                                scope="global", time_period="1d")
            assert scores["sample_size"] == 2 and scores["total_actions"] == 2
            assert scores["mean_score"] == 0.4
            assert (scores["min_score"], scores["max_score"]) == (0.2, 0.6)
            per_namespace = await call(client, "get_action_effectiveness", action_type="scale_deployment",
                                       scope="namespace", time_period="1d")
            assert per_namespace["groups"] == [{"namespace": "shop", **{k: scores[k] for k in (
                "total_actions", "sample_size", "mean_score", "min_score", "max_score", "ci95")}}]
            none = await call(client, "get_action_effectiveness", action_type="restart_pod",
                              scope="namespace:shop", time_period="1d")
            assert none["sample_size"] == 0 and none["mean_score"] is None

            # Bad arguments are tool errors that say what to fix, not crashes.
            bad = await client.call_tool("check_action_history", {"namespace": "shop", "resource_kind": "Deployment",
                                                                  "resource_name": "cart", "time_range": "soon"})
            assert bad.is_error and "time_range" in bad.content[0].text
            bad = await client.call_tool("get_action_effectiveness", {"action_type": "x", "scope": "galaxy"})
            assert bad.is_error and "scope" in bad.content[0].text

    run(session())
    # Only the webhook's own request above changed the history: the tools wrote nothing.
    after = run(counts(fresh_database))
    assert after["resource_action_traces"] == 2
    assert after["restrictions"] == 1 and after["oscillation_detections"] == 1


def test_patterns_formed_by_admitted_actions_are_found_in_the_history(gate, fresh_database, fresh_redis_url,
                                                                       tmp_path):
    # A person's flapping is allowed (with warnings), so the whole pattern is in the recorded history.
    flaps = [reviews.scale(name="web", before=b, after=a, user=reviews.PERSON) for b, a in [(3, 5), (5, 3), (3, 5)]]
    for review in flaps:
        assert gate.decide(review)["allowed"]

    async def session() -> None:
        async with Client(server(fresh_database, fresh_redis_url, tmp_path / "mcp"), read_timeout_seconds=60) as client:
            found = await call(client, "detect_oscillation_patterns", namespace="shop", resource_name="web",
                               pattern_types=["scale-oscillation"])
            (scale,) = found["patterns"]
            assert scale["detected"] is True
            assert scale["in_history"]["completed_by"] == flaps[2]["request"]["uid"]
            assert scale["in_history"]["times_completed"] == 1
            assert scale["in_history"]["summary"].startswith("2 direction reversals")
            history = await call(client, "check_action_history", namespace="shop", resource_kind="Deployment",
                                 resource_name="web", time_range="2h")
            assert [p["pattern_type"] for p in history["patterns"]] == ["scale-oscillation"]
            assert history["detections"][0]["alert"] == "shop/deployment-web-scale-oscillation"

            bad = await client.call_tool("detect_oscillation_patterns",
                                         {"namespace": "shop", "resource_name": "cart", "pattern_types": ["wobble"]})
            assert bad.is_error and "wobble" in bad.content[0].text and "scale-oscillation" in bad.content[0].text

    run(session())
