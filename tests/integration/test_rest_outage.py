"""Issue 16: the REST API reads through the gate's ``HistoryStore``. With PostgreSQL stopped, the
history and effectiveness routes answer 503 with Retry-After and say the store is unavailable,
while ``/safety-check`` keeps giving the webhook's own verdict (from the cache and the outbox)."""

from __future__ import annotations

import time

from tests import reviews
from tests.integration.api_helpers import assessment, client, start_gate


def wait_until(predicate, *, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_with_postgres_stopped_the_api_says_so_and_the_safety_check_agrees_with_the_gate(
        gate_factory, embedded_postgres_factory, fresh_redis_url, tmp_path):
    postgres = embedded_postgres_factory()
    gate = start_gate(gate_factory, tmp_path, postgres_dsn=postgres.dsn, redis_url=fresh_redis_url)
    api = client(gate)
    assert gate.decide(reviews.scale(before=3, after=5))["allowed"]
    assert gate.decide(reviews.scale(before=5, after=3))["allowed"]
    assert len(api.get("/api/v1/history").json()["items"]) == 2

    postgres.stop()
    wait_until(lambda: gate.client.get("/readyz").json()["stores"]["postgres"] == "down", what="postgres down")
    for response in (api.get("/api/v1/history"), api.get("/api/v1/effectiveness"),
                     api.post("/api/v1/actions/1/effectiveness", json=assessment(0.5))):
        assert response.status_code == 503, response.text
        assert "history store unavailable" in response.json()["error"]
        assert response.headers["retry-after"] == "5"

    check = api.post("/api/v1/safety-check", json={
        "namespace": "shop", "kind": "Deployment", "name": "cart", "action_type": "scale_deployment",
        "actor": reviews.AGENT, "replicas_before": 3, "replicas_after": 5})
    webhook = gate.decide(reviews.scale(before=3, after=5, dry_run=True))
    assert webhook["status"]["code"] == 429
    assert check.status_code == 200, check.text
    assert (check.json()["allowed"], check.json()["code"]) == (False, 429)
