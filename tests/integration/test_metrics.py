"""``/metrics`` of a running gate after a scripted sequence: every counter and histogram count has
the exact value the sequence implies, and no label carries a resource name or a user."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from tests import reviews

# Label names a metric may carry: bounded sets (namespaces, kinds, action types, patterns, outcomes).
BOUNDED_LABELS = {"namespace", "resource_kind", "action_type", "pattern_type", "severity", "strategy", "scope",
                  "model_used", "result", "decision", "pattern", "dry_run", "store", "mode", "le",
                  "policy"}  # an OscillationPattern's name: as many as an administrator creates


def scrape(gate) -> dict[tuple[str, frozenset], float]:
    reply = gate.client.get("/metrics")
    assert reply.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_scripted_sequence_shows_exact_labelled_counts(gate):
    # An agent flaps the replicas until the gate answers 429.
    first = gate.decide(reviews.scale(before=3, after=5))
    second = gate.decide(reviews.scale(before=5, after=3))
    third = gate.decide(reviews.scale(before=3, after=5))
    assert first["allowed"] and second["allowed"]
    assert third["status"]["code"] == 429
    # A person changes the replicas during the cooling period: allowed, with the refusal as a warning.
    person = gate.decide(reviews.scale(before=3, after=4, user=reviews.PERSON))
    assert person["allowed"] and any("cooling period" in w for w in person["warnings"])
    # The HPA is observed: recorded, never denied, even during the cooling period.
    hpa = gate.decide(reviews.scale(before=4, after=6, user=reviews.HPA))
    assert hpa["allowed"] and "warnings" not in hpa
    # A dry-run on another workload: decided, not recorded.
    dry = gate.decide(reviews.scale(name="api", before=2, after=3, dry_run=True))
    assert dry["allowed"]
    # A malformed body: 400, counted apart.
    assert gate.post(b"{not json").status_code == 400

    samples = scrape(gate)
    requests = "safety_gate_admission_requests_total"
    assert value(samples, requests, decision="allow", pattern="", dry_run="false") == 3  # 2 agent + HPA
    assert value(samples, requests, decision="deny", pattern="scale-oscillation", dry_run="false") == 1
    assert value(samples, requests, decision="warn", pattern="scale-oscillation", dry_run="false") == 1
    assert value(samples, requests, decision="allow", pattern="", dry_run="true") == 1
    total = sum(v for (name, _), v in samples.items() if name == requests)
    assert total == 6

    latency = "safety_gate_admission_duration_seconds_count"
    assert value(samples, latency, decision="allow") == 4
    assert value(samples, latency, decision="deny") == 1
    assert value(samples, latency, decision="warn") == 1
    assert value(samples, "safety_gate_admission_duration_seconds_bucket", decision="allow", le="+Inf") == 4

    # Admitted, recorded actions: 2 by the agent, the person's and the HPA's (not the denial, not the dry run).
    assert value(samples, "ai_action_history_total", namespace="shop", resource_kind="Deployment",
                 action_type="scale_deployment") == 4
    assert sum(v for (name, _), v in samples.items() if name == "ai_action_history_total") == 4
    # One detection: the agent's denied reversal (2 reversals: medium).
    assert value(samples, "ai_oscillation_detection_total", pattern_type="scale-oscillation", namespace="shop",
                 severity="medium") == 1
    assert sum(v for (name, _), v in samples.items() if name == "ai_oscillation_detection_total") == 1

    assert value(samples, "safety_gate_bad_requests_total") == 1
    # /readyz (polled at start-up) found both stores up.
    assert value(samples, "safety_gate_degraded", store="postgres") == 0
    assert ("safety_gate_degraded", frozenset({("store", "postgres")})) in samples
    assert ("safety_gate_degraded", frozenset({("store", "redis")})) in samples
    assert value(samples, "safety_gate_degraded", store="redis") == 0
    assert sum(v for (name, _), v in samples.items() if name == "safety_gate_degraded_decisions_total") == 0

    # Bounded labels only: no resource names, no users anywhere in the gate's own metrics.
    for name, labels in samples:
        if name.startswith(("safety_gate_", "ai_")):
            assert {key for key, _ in labels} <= BOUNDED_LABELS, name
            assert not any(v in ("cart", "api", reviews.PERSON, reviews.AGENT, reviews.HPA) for _, v in labels), name


def poll(condition, *, timeout: float = 30.0) -> bool:
    """True as soon as ``condition()`` holds (the gate checks its stores in the background)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def redis_is(gate, state: str, gauge: int) -> bool:
    """/readyz reports Redis ``state`` and the gauge says the same."""
    stores = gate.client.get("/readyz").json()["stores"]
    return stores.get("redis") == state and value(scrape(gate), "safety_gate_degraded", store="redis") == gauge


def test_degraded_follows_readyz_when_redis_goes_away(gate_factory, embedded_redis_factory):
    redis = embedded_redis_factory()
    gate = gate_factory(redis_url=redis.url)
    assert redis_is(gate, "up", 0)
    redis.stop()
    assert poll(lambda: redis_is(gate, "down", 1))
    ready = gate.client.get("/readyz")
    assert ready.status_code == 200  # PostgreSQL alone is enough to decide
    assert ready.json()["stores"] == {"postgres": "up", "redis": "down"}
    assert value(scrape(gate), "safety_gate_degraded", store="postgres") == 0
    redis.start()
    assert poll(lambda: redis_is(gate, "up", 0))
