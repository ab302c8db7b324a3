"""Thousands of malformed and random bodies: never a 500, and the gate keeps answering."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import reviews

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["uid", "kind", "resource", "subResource", "name", "namespace", "operation", "userInfo", "object",
          "oldObject", "dryRun"]


def mutate(body: dict, rng: random.Random, value) -> dict:
    """Replace or delete one field somewhere in a valid review."""
    request = body["request"]
    choice = rng.random()
    field = rng.choice(FIELDS)
    if choice < 0.4:
        request[field] = value
    elif choice < 0.6:
        request.pop(field, None)
    elif choice < 0.8 and isinstance(request.get("object"), dict):
        target = request["object"].setdefault("spec", {})
        target[rng.choice(["replicas", "template", "params", "pipelineRef"])] = value
    else:
        body[rng.choice(["apiVersion", "kind", "request"])] = value
    return body


VALID = [
    lambda: reviews.scale(before=3, after=5),
    lambda: reviews.memory_change("64Mi", "128Mi"),
    lambda: reviews.pipelinerun(),
    lambda: reviews.replicas_patch(1, 2),
]


def test_random_bodies_never_get_a_500(gate):
    rng = random.Random(20261121)
    statuses: dict[int, int] = {}

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(value=JSON, raw=st.binary(max_size=200), mode=st.integers(0, 3))
    def post_one(value, raw, mode):
        if mode == 0:
            body = raw
        elif mode == 1:
            body = json.dumps(value).encode()
        else:
            body = json.dumps(mutate(rng.choice(VALID)(), rng, value), default=str).encode()
        reply = gate.post(body)
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
        assert reply.status_code in (200, 400), reply.text
        if reply.status_code == 400:
            assert reply.json()["error"]
        else:
            assert reply.json()["kind"] == "AdmissionReview"
            answer = reply.json()["response"]
            warnings = " ".join(answer.get("warnings", []))
            # Malformed input is not a store outage: never the answer of a gate that could not decide.
            assert "unchecked" not in warnings and "unavailable" not in warnings, answer
            assert (answer.get("status") or {}).get("code") != 503, answer

    post_one()
    assert sum(statuses.values()) >= 1500
    assert statuses.get(400, 0) > 0
    assert gate.client.get("/healthz").status_code == 200
    assert gate.decide(reviews.scale(before=3, after=4, name="after-fuzz"))["allowed"] is True
