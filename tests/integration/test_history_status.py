"""Each action's status (proposed / confirmed / not-applied / recorded) as the history API, the CLI
and the MCP tools show it. The statuses are written the way the confirmation watch writes them."""

from __future__ import annotations

import asyncio
import datetime

from mcp import Client

from tests import reviews
from tests.integration.api_helpers import client, start_gate
from tests.integration.test_cli import cli
from tests.integration.test_mcp import call, server
from tests.sql import fetch
from webhook.server.runtime import CACHE_HORIZON
from webhook.store.cache import RedisCache
from webhook.store.confirmation import ActionStatus, Operation, Proposed, Resolution, Subject
from webhook.store.history import HistoryStore
from webhook.store.postgres import PostgresStore, create_pool


async def mark(dsn: str, redis_url: str, statuses: dict[str, ActionStatus]) -> None:
    """Through the HistoryStore, as the confirmation watch does: a not-applied action also leaves the
    cached histories the gate and the tools read."""
    pool = await create_pool(dsn, max_size=2)
    cache = RedisCache.from_url(redis_url, cluster_id="default", horizon=CACHE_HORIZON)
    try:
        history = HistoryStore(postgres=PostgresStore(pool, cluster_id="default"), cache=cache)
        now = datetime.datetime.now(datetime.timezone.utc)
        for uid in statuses:
            assert await history.propose(Proposed(uid=uid, at=now, operation=Operation.UPDATE,
                                                  subject=Subject("Deployment", "shop", "cart"),
                                                  change={"replicas": 5}, actor=reviews.AGENT,
                                                  target_key="shop/Deployment/cart"))
        await history.resolve([Resolution(uid=uid, status=status, reason="test")
                               for uid, status in statuses.items() if status is not ActionStatus.PROPOSED], now=now)
    finally:
        await cache.close()
        await pool.close()


def test_history_api_cli_and_mcp_show_each_actions_status(gate_factory, tmp_path, fresh_database, fresh_redis_url):
    gate = start_gate(gate_factory, tmp_path)
    bodies = [reviews.scale(before=b, after=a) for b, a in [(3, 4), (4, 5), (5, 6), (6, 7)]]
    for body in bodies:
        assert gate.decide(body)["allowed"]
    uids = [body["request"]["uid"] for body in bodies]
    expected = {uids[0]: ActionStatus.CONFIRMED, uids[1]: ActionStatus.NOT_APPLIED, uids[2]: ActionStatus.PROPOSED}
    asyncio.run(mark(fresh_database, fresh_redis_url, expected))
    expected[uids[3]] = ActionStatus.RECORDED  # no status row: recorded with nothing to confirm against
    assert {row["request_uid"] for row in fetch(fresh_database, "SELECT request_uid FROM action_status")} == set(
        uids[:3])

    with client(gate) as api:
        items = api.get("/api/v1/history", params={"namespace": "shop", "name": "cart"}).json()["items"]
    assert {item["request_uid"]: item["status"] for item in items} == {u: s.value for u, s in expected.items()}

    shown = cli("history", "shop/deployment/cart", "--since", "1h", "--postgres-dsn", fresh_database)
    assert shown.returncode == 0, shown.stderr
    assert "4 action(s)" in shown.stdout
    for status in ("confirmed", "not-applied", "proposed", "recorded"):
        assert status in shown.stdout

    async def tool() -> dict:
        async with Client(server(fresh_database, fresh_redis_url, tmp_path / "mcp")) as mcp:
            return await call(mcp, "check_action_history", namespace="shop", resource_kind="Deployment",
                              resource_name="cart", time_range="1h")

    answer = asyncio.run(tool())
    # What counts is listed under actions; what never landed apart, and counts toward nothing.
    assert {a["request_uid"]: a["status"] for a in answer["actions"]} == {
        uids[0]: "confirmed", uids[2]: "proposed", uids[3]: "recorded"}
    assert answer["total_actions"] == 3
    assert [a["request_uid"] for a in answer["not_applied"]] == [uids[1]]
