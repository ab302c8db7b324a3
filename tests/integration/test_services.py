"""Issue 16: a serving gate runs its background loops as services and says how each is doing."""

from __future__ import annotations


def test_healthz_lists_the_background_services_and_their_state(gate_factory):
    gate = gate_factory(env={"SAFETY_GATE_RETENTION_INTERVAL": "5"})
    body = gate.client.get("/healthz").json()
    assert body["status"] == "ok"
    services = body["services"]
    # No cluster: no Kubernetes watchers, no certificate rotation.
    assert set(services) == {"store-upkeep", "table-statistics", "retention", "effectiveness"}
    assert all(service["state"] == "running" and service["failures"] == 0 for service in services.values())


def test_the_effectiveness_refresh_has_its_own_schedule(gate_factory):
    # Off on its own, while retention runs (before, it was tied to the retention interval).
    gate = gate_factory(env={"SAFETY_GATE_EFFECTIVENESS_INTERVAL": "0", "SAFETY_GATE_RETENTION_INTERVAL": "5"})
    assert set(gate.client.get("/healthz").json()["services"]) == {"store-upkeep", "table-statistics", "retention"}
    # And on with retention off (before, no retention meant no refresh either).
    other = gate_factory(name="other", env={"SAFETY_GATE_RETENTION_INTERVAL": "0"})
    assert set(other.client.get("/healthz").json()["services"]) == {"store-upkeep", "table-statistics", "effectiveness"}
