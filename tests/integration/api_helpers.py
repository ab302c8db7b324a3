"""Shared by the REST API tests: a gate with a token file, an authenticated client, direct seeding."""

from __future__ import annotations

import datetime
import pathlib
import uuid
from typing import Any

import httpx

from tests.gateproc import GateProcess
from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.store.postgres import PostgresStore, create_pool

TOKEN = "s3cret-token-for-tests"
AGENT = "system:serviceaccount:remediation:kubernaut-agent"
CRITERIA = {"alertResolved": True, "targetMetricImproved": True, "noNewAlertsGenerated": True,
            "resourceStabilized": True, "sideEffectsMinimal": True}


def token_file(directory: pathlib.Path) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "api-tokens"
    path.write_text(f"# tokens for the API\n{TOKEN},ci-robot\n\nother-token\n")
    return path


def start_gate(gate_factory, tmp_path: pathlib.Path, **kwargs: Any) -> GateProcess:
    tokens = token_file(tmp_path / "secrets")
    extra = ["--api-token-file", str(tokens), *kwargs.pop("extra_args", [])]
    return gate_factory(extra_args=extra, **kwargs)


def client(gate: GateProcess, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return gate.new_client(timeout=30, headers=headers)


def assessment(score: float, **extra: Any) -> dict[str, Any]:
    return {"score": score, "criteria": CRITERIA, "method": "automated", **extra}


async def seed_actions(dsn: str, specs: list[dict[str, Any]]) -> list[int]:
    """Record actions straight into PostgreSQL (the gate's database); returns their ids in order.

    Each spec: ``at`` (datetime), optional ``target`` (TargetRef), ``action_type``, ``alert_name``,
    ``model_used``, ``correlation_id``, ``score``."""
    pool = await create_pool(dsn, max_size=2)
    try:
        store = PostgresStore(pool, cluster_id="default")
        ids = []
        for spec in specs:
            event = ActionEvent(
                uid=f"seed-{uuid.uuid4()}", at=spec["at"],
                target=spec.get("target", TargetRef(namespace="shop", kind="Deployment", name="cart")),
                action_type=spec.get("action_type", "restart_pod"), actor=AGENT, actor_class=ActorClass.AUTOMATION,
                alert_name=spec.get("alert_name"), model_used=spec.get("model_used"),
                correlation_id=spec.get("correlation_id"))
            action_id = await store.record_action(event)
            if spec.get("score") is not None:
                await pool.execute("UPDATE resource_action_traces SET effectiveness_score = $2,"
                                   " effectiveness_method = 'automated', effectiveness_assessed_at = now()"
                                   " WHERE id = $1", action_id, spec["score"])
            ids.append(action_id)
        return ids
    finally:
        await pool.close()


async def count_rows(dsn: str) -> dict[str, int]:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        return {table: await connection.fetchval(f"SELECT count(*) FROM {table}")
                for table in ("resource_action_traces", "admission_decisions", "restrictions",
                              "oscillation_detections")}
    finally:
        await connection.close()


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
