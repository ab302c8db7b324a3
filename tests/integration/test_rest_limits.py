"""Client mistakes on a running gate's REST API are 400s (or 404s) that say what is wrong: values
beyond what the columns hold used to reach PostgreSQL's driver and come back as a 503 with
Retry-After, telling the client to retry a request that can never succeed."""

from __future__ import annotations

import base64
import json

from tests.integration.api_helpers import client, start_gate


def cursor(at: str, action_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"t": at, "i": action_id}).encode()).decode().rstrip("=")


def test_out_of_range_parameters_are_400s_naming_the_parameter(gate_factory, tmp_path) -> None:
    gate = start_gate(gate_factory, tmp_path)
    cases = [
        ({"cursor": cursor("2026-01-01T00:00:00+00:00", 10**30)}, "cursor"),
        ({"cursor": cursor("9999-12-31T23:59:59-23:00", 5)}, "cursor"),
        ({"until": "9999-12-31T23:59:59-23:00"}, "until"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ({"since": "3000w"}, "since"),
        ({"limit": "1" + "0" * 30}, "limit"),
    ]
    with client(gate) as api:
        for query, name in cases:
            reply = api.get("/api/v1/history", params=query)
            assert reply.status_code == 400, (query, reply.status_code, reply.text)
            assert "retry-after" not in reply.headers
            body = reply.json()
            assert body["details"][0]["loc"] == name and name in body["error"], body
        # The edges themselves are fine.
        for query in ({"until": "9999-12-31T23:59:59Z"}, {"since": "0001-01-01T00:00:00Z"},
                      {"cursor": cursor("2026-01-01T00:00:00+00:00", 2**63 - 1)}):
            reply = api.get("/api/v1/history", params=query)
            assert reply.status_code == 200, (query, reply.text)
            assert reply.json()["items"] == []


def test_an_unknown_route_is_named_once(gate_factory, tmp_path) -> None:
    gate = start_gate(gate_factory, tmp_path)
    with client(gate) as api:
        reply = api.get("/api/v1/HISTORY")
        assert reply.status_code == 404
        assert reply.json()["error"] == "no API route '/api/v1/HISTORY'; see GET /api/v1/openapi.json"
