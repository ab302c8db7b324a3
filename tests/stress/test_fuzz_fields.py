"""Issue 12, item 11 (fuzz): typed mutations of every field of real review shapes, through the
real HTTPS gate on real PostgreSQL and Redis.

Each mutation replaces (or removes) one field of a Deployment, StatefulSet, Scale or PipelineRun
review with a value of another type or one the history cannot store: NUL bytes, lone surrogates,
integers beyond int32/int64, 1e309, NaN, deep nesting, huge strings. The gate must answer every
one with either a 400 naming the problem or a real decision: never a 5xx, and never the
"allowed unchecked" of a gate that could not decide — a malformed request is not a store outage.
Deterministic (seeded) and bounded: a fixed number of requests, one gate.
"""

from __future__ import annotations

import collections
import copy
import json
import pathlib
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import reviews
from tests.gateproc import GateProcess

MUTATIONS = 2400
RAW = "__raw_literal__"
DELETE = object()

# Values of every JSON type, and values of the right type that the history could not store.
VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 3, 2**31 - 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308,
    "", " ", "x", "3", "\x00", "cart\x00", "\ud800", "\udfff-x", "é" * 300, "a" * 5000, "9" * 300, "1e309",
    "64Mi", "-1", "NaN", "Infinity", "0.5Gi", "1e24", "system:masters", "shop/Deployment/cart",
    [], [1], ["a"], [None], [{}], [{"name": "x"}], [[]], {}, {"a": 1}, {"name": 5}, {"name": "x", "value": {}},
    {"cpu": [1]}, {"memory": "1e309"}, {"memory": 1e300}, DELETE,
]
# Literals json.dumps cannot write: placed into the text in place of a marker string.
RAW_LITERALS = [b"1e309", b"-1e999", b"NaN", b"Infinity", b"9" * 5000, b"-" + b"9" * 80,
                b"[" * 300 + b"]" * 300, b'{"a": ' * 150 + b"1" + b"}" * 150]


def shapes() -> dict[str, dict]:
    sts_old = reviews.deployment("db", kind="StatefulSet", memory_limit="1Gi")
    sts_new = reviews.deployment("db", kind="StatefulSet", memory_limit="2Gi")
    restarted = reviews.deployment("web", image="registry.example/web:2", restarted_at="2026-12-01T07:00:00Z",
                                   annotations={reviews.PREFIX + "alert-name": "KubePodCrashLooping",
                                                reviews.PREFIX + "confidence": "0.8"})
    return {
        "deployment-memory": reviews.memory_change("64Mi", "128Mi", alert="KubePodOOMKilled"),
        "deployment-replicas": reviews.replicas_patch(2, 4),
        "deployment-image-restart": reviews.workload_update(reviews.deployment("web"), restarted),
        "statefulset-memory": reviews.workload_update(sts_old, sts_new),
        "scale": reviews.scale(before=3, after=5),
        "statefulset-scale": reviews.scale("db", before=1, after=2, kind="StatefulSet"),
        "pipelinerun": reviews.pipelinerun(labels={"kubernaut.ai/workflow-id": "oom-increase"},
                                           annotations={reviews.PREFIX + "model-used": "gpt"}),
    }


def paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every field under ``request``: dict keys and list positions, inner nodes included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from paths(value, (*prefix, index))


def mutated(body: dict, path: tuple, value: Any) -> dict:
    body = copy.deepcopy(body)
    node = body["request"]
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


def encode(body: dict, raw: bytes | None) -> bytes:
    text = json.dumps(body, ensure_ascii=True).encode()
    return text.replace(json.dumps(RAW).encode(), raw) if raw is not None else text


@pytest.fixture
def fuzz_gate(tmp_path: pathlib.Path, fresh_database: str, fresh_redis_url: str) -> Iterator[GateProcess]:
    with GateProcess(data_dir=tmp_path / "gate", postgres_dsn=fresh_database, redis_url=fresh_redis_url) as gate:
        yield gate


def unchecked(answer: dict) -> bool:
    """The answer of a gate that could not decide (fail-open warning, or a 503 refusal)."""
    warnings = " ".join(answer.get("warnings", []))
    return ("unchecked" in warnings or "unavailable" in warnings
            or (answer.get("status") or {}).get("code") == 503)


def test_typed_field_mutations_get_a_400_or_a_real_decision(fuzz_gate):
    rng = random.Random(20261201)
    bases = shapes()
    fields = {name: list(paths(body["request"])) for name, body in bases.items()}
    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    for n in range(MUTATIONS):
        name = rng.choice(sorted(bases))
        path = rng.choice(fields[name])
        raw = rng.choice(RAW_LITERALS) if rng.random() < 0.1 else None
        value = RAW if raw is not None else rng.choice(VALUES)
        body = mutated(bases[name], path, value)
        if path != ("uid",):
            body["request"]["uid"] = f"fuzz-{n}"
        where = f"{name} request.{'.'.join(map(str, path))} = {raw[:40] if raw else repr(value)[:40]}"
        try:
            reply = fuzz_gate.post(encode(body, raw))
        except httpx.HTTPError as exc:  # a dropped connection is a crash, not an answer
            failures.append(f"{where}: no answer ({exc!r})")
            continue
        if reply.status_code >= 500:
            failures.append(f"{where}: HTTP {reply.status_code} {reply.text[:200]}")
            continue
        if reply.status_code == 400:
            error = reply.json()
            if not error.get("error"):
                failures.append(f"{where}: 400 without a message")
            outcomes["400"] += 1
            continue
        if reply.status_code != 200:
            failures.append(f"{where}: HTTP {reply.status_code}")
            continue
        answer = reply.json()["response"]
        if unchecked(answer):
            failures.append(f"{where}: answered unchecked: {answer}")
        outcomes["allowed" if answer["allowed"] else "denied"] += 1
    print(f"\n{MUTATIONS} typed mutations over {sum(map(len, fields.values()))} fields of {len(bases)} shapes: "
          f"{dict(outcomes)}")
    assert not failures, f"{len(failures)} of {MUTATIONS}:\n" + "\n".join(failures[:40])
    assert outcomes["400"] > MUTATIONS // 4 and outcomes["allowed"] > MUTATIONS // 10
    # The gate is still deciding afterwards.
    fresh_agent = "system:serviceaccount:other:agent"   # the fuzzed one may have used its cascading budget
    assert fuzz_gate.decide(reviews.scale(name="after-fuzz", before=3, after=4, user=fresh_agent))["allowed"] is True
