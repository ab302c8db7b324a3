"""Issue 16: the MCP tools read through the gate's own ``HistoryStore``, so with PostgreSQL stopped
they still agree with the gate: the history the gate decides from (a warm cache plus the outbox)
is the history the tools show, and ``validate_action_safety`` gives the webhook's refusal.

Before, the tools read PostgreSQL directly: during the outage they failed (or, with a replica's
cache warm, showed a history the gate no longer decided from).
"""

from __future__ import annotations

import asyncio
import time

from mcp import Client

from tests import reviews
from tests.integration.test_mcp import SECONDS_LEFT, answer, call, run, server
from tests.polling import wait_until


def test_with_postgres_stopped_the_tools_and_the_gate_agree(gate_factory, embedded_postgres_factory,
                                                             fresh_redis_url, tmp_path):
    postgres = embedded_postgres_factory()
    gate = gate_factory(postgres_dsn=postgres.dsn, redis_url=fresh_redis_url)
    # Before the outage: one reversal on "cart", recorded in PostgreSQL and cached by the gate.
    assert gate.decide(reviews.scale(before=3, after=5))["allowed"]
    assert gate.decide(reviews.scale(before=5, after=3))["allowed"]

    async def session() -> None:
        async with Client(server(postgres.dsn, fresh_redis_url, tmp_path / "mcp"), read_timeout_seconds=60) as client:
            healthy = await call(client, "check_action_history", namespace="shop", resource_kind="Deployment",
                                 resource_name="cart", time_range="1h")
            assert healthy["total_actions"] == 2 and healthy["store"]["mode"] == "healthy"

            postgres.stop()
            wait_until(lambda: gate.client.get("/readyz").json()["stores"]["postgres"] == "down",
                       what="the gate to see postgres down")
            # Admitted during the outage: a person's reversal on "web" waits in the outbox only.
            for before, after in [(2, 4), (4, 2)]:
                assert gate.decide(reviews.scale(name="web", before=before, after=after, user=reviews.PERSON))[
                    "allowed"]

            # The tools see both histories as the gate does: "cart" from the cache, "web" from the outbox.
            cart = await call(client, "check_action_history", namespace="shop", resource_kind="Deployment",
                              resource_name="cart", time_range="1h")
            assert [a["change"] for a in cart["actions"]] == ["replicas 3→5", "replicas 5→3"]
            assert cart["store"]["mode"] in ("postgres-down", "cold-cache")
            assert "postgres-down" in cart["store"]["gaps"] and cart["store"]["complete"] is False
            web = await call(client, "check_action_history", namespace="shop", resource_kind="Deployment",
                             resource_name="web", time_range="1h")
            assert [a["change"] for a in web["actions"]] == ["replicas 2→4", "replicas 4→2"]

            # The same proposal gets the same verdict from the tool and from the webhook.
            for name, before, after in [("cart", 3, 5), ("web", 2, 4)]:
                verdict = await call(client, "validate_action_safety", namespace="shop", resource_name=name,
                                     proposed_action="scale_deployment", current_state={"replicas": before},
                                     target_replicas=after, actor=reviews.AGENT)
                webhook = gate.decide(reviews.scale(name=name, before=before, after=after, dry_run=True))
                assert webhook["status"]["code"] == 429, (name, webhook)
                assert (verdict["allowed"], verdict["code"], SECONDS_LEFT.sub("", verdict["message"])) == answer(
                    webhook), name

            # The pattern a third change would complete shows for both targets, from the same history.
            patterns = await call(client, "detect_oscillation_patterns", namespace="shop", resource_name="web",
                                  pattern_types=["scale-oscillation"])
            assert patterns["actions_in_window"] == 2 and "postgres-down" in patterns["store"]["gaps"]

            # Scores live in PostgreSQL alone: the tool says the store is unavailable, it does not crash.
            scores = await client.call_tool("get_action_effectiveness", {"action_type": "scale_deployment"})
            assert scores.is_error and "history store unavailable" in scores.content[0].text

            postgres.start()
            wait_until(lambda: gate.client.get("/readyz").json()["degraded"] is False, what="postgres back")
            # The tools' own store check sees PostgreSQL back within its upkeep interval; until then
            # their answer says it is incomplete, which is the truth.
            deadline = time.monotonic() + 60
            while True:
                back = await call(client, "check_action_history", namespace="shop", resource_kind="Deployment",
                                  resource_name="web", time_range="1h")
                if back["store"]["complete"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert back["store"]["complete"] is True
            assert [a["change"] for a in back["actions"]] == ["replicas 2→4", "replicas 4→2"]

    run(session())
