"""Effectiveness through a running gate: recorded scores change verdicts, and aggregates match
hand-computed values."""

from __future__ import annotations

import datetime

import asyncpg

from tests import reviews
from tests.integration.api_helpers import CRITERIA, assessment, client, seed_actions, start_gate, utcnow
from webhook.actions.model import TargetRef

CART = {"namespace": "shop", "kind": "Deployment", "name": "cart"}


def latest_action_id(api, **target) -> int:  # type: ignore[no-untyped-def]
    reply = api.get("/api/v1/history", params={**target, "limit": 1})
    assert reply.status_code == 200, reply.text
    return reply.json()["items"][0]["id"]


def test_a_recorded_score_ends_an_ineffective_loop(gate_factory, tmp_path) -> None:
    gate = start_gate(gate_factory, tmp_path)
    for _ in range(3):   # the same remediation for the same alert, three times
        assert gate.decide(reviews.pipelinerun(action_type="restart_pod", alert="KubePodCrashLooping"))["allowed"]
    fourth = {**CART, "action_type": "restart_pod", "actor": reviews.AGENT, "alert_name": "KubePodCrashLooping"}
    with client(gate) as api:
        would = api.post("/api/v1/safety-check", json=fourth).json()
        assert would["allowed"] is False and would["code"] == 403
        assert would["pattern"] == "ineffective-loop" and would["strategy"] == "escalate-human"

        latest = latest_action_id(api, **CART)
        reply = api.post(f"/api/v1/actions/{latest}/effectiveness", json=assessment(0.6, notes="pods stable"))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["id"] == latest and body["effectiveness"]["score"] == 0.6
        assert body["effectiveness"]["criteria"] == CRITERIA and body["effectiveness"]["method"] == "automated"
        assert body["target"] == CART

        now_allowed = api.post("/api/v1/safety-check", json=fourth).json()
        assert now_allowed["allowed"] is True, now_allowed["message"]
        history = api.get("/api/v1/history", params={**CART, "limit": 1}).json()["items"][0]
        assert history["effectiveness"]["score"] == 0.6 and history["effectiveness"]["notes"] == "pods stable"
    # And the webhook itself agrees: the 4th action is admitted.
    assert gate.decide(reviews.pipelinerun(action_type="restart_pod", alert="KubePodCrashLooping"))["allowed"]


def test_the_suggested_alternative_follows_the_best_recorded_score(gate_factory, tmp_path) -> None:
    gate = start_gate(gate_factory, tmp_path)
    api_target = {"namespace": "shop", "kind": "Deployment", "name": "api"}
    for action_type in ("restart_pod", "rollback_deployment"):
        assert gate.decide(reviews.pipelinerun(action_type=action_type, target="shop/Deployment/api",
                                               alert=None))["allowed"]
    assert gate.decide(reviews.memory_change("64Mi", "128Mi", name="api"))["allowed"]
    assert gate.decide(reviews.memory_change("128Mi", "64Mi", name="api"))["allowed"]
    thrash = reviews.memory_change("64Mi", "128Mi", name="api")

    with client(gate) as api:
        def suggestion() -> str:
            result = api.post("/api/v1/safety-check", json=thrash).json()
            assert result["allowed"] is False and result["pattern"] == "resource-thrashing", result
            return result["message"]

        assert "escalate to a person instead" in suggestion()     # nothing assessed yet

        items = api.get("/api/v1/history", params={**api_target, "limit": 10}).json()["items"]
        ids = {item["action_type"]: item["id"] for item in items}
        assert api.post(f"/api/v1/actions/{ids['restart_pod']}/effectiveness", json=assessment(0.4)).status_code == 200
        assert api.post(f"/api/v1/actions/{ids['rollback_deployment']}/effectiveness",
                        json=assessment(0.9)).status_code == 200
        assert "try rollback_deployment instead" in suggestion()

        assert api.post(f"/api/v1/actions/{ids['restart_pod']}/effectiveness",
                        json=assessment(1.0, method="manual")).status_code == 200
        assert "try restart_pod instead" in suggestion()

    denied = gate.decide(thrash)
    assert denied["allowed"] is False and "try restart_pod instead" in denied["status"]["message"]
    # The detection's evidence is now marked as pattern examples, which pattern-aware retention keeps.
    with client(gate) as api:
        items = api.get("/api/v1/history", params={**api_target, "limit": 10}).json()["items"]
    marks = {item["summary"]: item["is_pattern_example"] for item in items}
    assert marks["app memory request 64Mi→128Mi, app memory limit 64Mi→128Mi"] is True
    assert marks["app memory request 128Mi→64Mi, app memory limit 128Mi→64Mi"] is True
    assert marks["rollback_deployment"] is False


async def test_assess_by_correlation_and_bad_input(gate_factory, tmp_path, fresh_database) -> None:
    gate = start_gate(gate_factory, tmp_path)
    now = utcnow()
    ids = await seed_actions(fresh_database, [
        {"at": now - datetime.timedelta(minutes=m), "correlation_id": "incident-7"} for m in (30, 20, 10)
    ] + [{"at": now, "correlation_id": "incident-8"}])
    with client(gate) as api:
        reply = api.post("/api/v1/actions/by-correlation/incident-7/effectiveness", json=assessment(0.2))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["correlation_id"] == "incident-7"
        assert [a["id"] for a in body["actions"]] == ids[:3]
        assert all(a["effectiveness"]["score"] == 0.2 for a in body["actions"])
        missing = api.post("/api/v1/actions/by-correlation/nothing/effectiveness", json=assessment(0.2))
        assert missing.status_code == 404 and "nothing" in missing.json()["error"]

        for bad, status in (({"score": 2, "criteria": CRITERIA, "method": "manual"}, 422),
                            ({"score": 0.5, "criteria": CRITERIA, "method": "guess"}, 422),
                            ({"score": 0.5, "criteria": {**CRITERIA, "alertResolved": "yes"}, "method": "manual"}, 422),
                            ({"score": 0.5, "method": "manual"}, 422),
                            ([1, 2], 400)):
            reply = api.post(f"/api/v1/actions/{ids[3]}/effectiveness", json=bad)
            assert reply.status_code == status, (bad, reply.text)
            assert reply.json()["error"]
        assert api.post(f"/api/v1/actions/{ids[3]}/effectiveness", content=b"not json",
                        headers={"content-type": "application/json"}).status_code == 400
    connection = await asyncpg.connect(fresh_database)
    try:
        rows = await connection.fetch("SELECT id, effectiveness_score, effectiveness_method, effectiveness_criteria,"
                                      " effectiveness_assessed_at FROM resource_action_traces ORDER BY id")
    finally:
        await connection.close()
    scored = {row["id"]: row for row in rows if row["effectiveness_score"] is not None}
    assert set(scored) == set(ids[:3])
    assert all(row["effectiveness_method"] == "automated" and row["effectiveness_assessed_at"] for row in scored.values())


async def test_aggregates_match_hand_computed_values(gate_factory, tmp_path, fresh_database) -> None:
    gate = start_gate(gate_factory, tmp_path)
    now = utcnow()
    hour = datetime.timedelta(hours=1)
    web = TargetRef(namespace="web", kind="Deployment", name="front")
    # restart_pod in shop, oldest first: 0.2, 0.4, 0.6, 0.8 → mean 0.5, s = 0.258199, t(3) = 3.182,
    # half-width 0.410795 → [0.089205, 0.910795]; newer half 0.7 vs older 0.3 → improving.
    await seed_actions(fresh_database, [
        {"at": now - (10 - i) * hour, "score": s, "alert_name": "KubePodCrashLooping", "model_used": "granite"}
        for i, s in enumerate([0.2, 0.4, 0.6, 0.8])
    ] + [
        # restart_pod in web: 0.9, 0.5 → mean 0.7; s = 0.282843, t(1) = 12.706 → clamped [0, 1]; stable (<4).
        {"at": now - 5 * hour, "score": 0.9, "target": web, "model_used": "granite"},
        {"at": now - 4 * hour, "score": 0.5, "target": web, "model_used": "llama"},
        # scale_deployment in shop: one sample 0.3 → [0, 1]. Unassessed and too old actions do not count.
        {"at": now - 3 * hour, "score": 0.3, "action_type": "scale_deployment"},
        {"at": now - 2 * hour, "action_type": "scale_deployment"},
        {"at": now - datetime.timedelta(days=40), "score": 0.0},
    ])
    with client(gate) as api:
        shop = api.get("/api/v1/effectiveness", params={"scope": "namespace", "value": "shop",
                                                        "action_type": "restart_pod"})
        assert shop.status_code == 200, shop.text
        report = shop.json()
        assert (report["scope"], report["value"], report["period"]) == ("namespace", "shop", "30d")
        [aggregate] = report["aggregates"]
        assert (aggregate["scope_value"], aggregate["action_type"], aggregate["sample_size"]) == ("shop", "restart_pod", 4)
        assert abs(aggregate["mean_score"] - 0.5) < 1e-6
        assert abs(aggregate["confidence_interval"]["lower"] - 0.089205) < 1e-5
        assert abs(aggregate["confidence_interval"]["upper"] - 0.910795) < 1e-5
        assert aggregate["confidence_interval"]["level"] == 0.95 and aggregate["trend"] == "improving"

        glob = {a["action_type"]: a for a in api.get("/api/v1/effectiveness").json()["aggregates"]}
        assert glob["restart_pod"]["sample_size"] == 6
        assert abs(glob["restart_pod"]["mean_score"] - (0.2 + 0.4 + 0.6 + 0.8 + 0.9 + 0.5) / 6) < 1e-6
        assert glob["scale_deployment"]["sample_size"] == 1
        assert glob["scale_deployment"]["confidence_interval"] == {"level": 0.95, "lower": 0.0, "upper": 1.0}

        web_report = api.get("/api/v1/effectiveness", params={"scope": "namespace", "value": "web"}).json()
        [web_aggregate] = web_report["aggregates"]
        assert abs(web_aggregate["mean_score"] - 0.7) < 1e-6 and web_aggregate["trend"] == "stable"
        assert web_aggregate["confidence_interval"] == {"level": 0.95, "lower": 0.0, "upper": 1.0}

        models = {a["scope_value"]: a["sample_size"] for a in api.get(
            "/api/v1/effectiveness", params={"scope": "model", "action_type": "restart_pod"}).json()["aggregates"]}
        assert models == {"granite": 5, "llama": 1}
        alerts = api.get("/api/v1/effectiveness", params={"scope": "alert"}).json()["aggregates"]
        assert [(a["scope_value"], a["sample_size"]) for a in alerts] == [("KubePodCrashLooping", 4)]
        assert api.get("/api/v1/effectiveness", params={"period": "1h"}).json()["aggregates"] == []
        assert len(api.get("/api/v1/effectiveness", params={"period": "60d"}).json()["aggregates"]) == 2
        for bad in ({"scope": "planet"}, {"period": "soon"}, {"period": "0d"}):
            assert api.get("/api/v1/effectiveness", params=bad).status_code == 400

        metrics = api.get("/metrics").text
        assert 'ai_action_effectiveness_score{action_type="restart_pod",model_used="all",scope="namespace/shop"} 0.5' \
            in metrics

    connection = await asyncpg.connect(fresh_database)
    try:
        row = await connection.fetchrow(
            "SELECT * FROM action_effectiveness_metrics WHERE scope_type = 'namespace' AND scope_value = 'shop'"
            " AND action_type = 'restart_pod'")
    finally:
        await connection.close()
    assert row["sample_size"] == 4 and abs(row["mean_score"] - 0.5) < 1e-6 and row["trend"] == "improving"
    assert abs(row["ci_lower"] - 0.089205) < 1e-5 and abs(row["ci_upper"] - 0.910795) < 1e-5
