"""Issue 12, item 6: the cost of resource-thrashing grows linearly with the size of a change.

A template with thousands of containers moves thousands of dimensions; looking each one up in
every event of the window was quadratic (a 12,000-container Deployment took 52 s). Not timed:
the test counts how often a change's dimension is computed, which is what the cost was made of.
"""

from __future__ import annotations

import pytest

from webhook.actions.model import ResourceChange
from webhook.detection import resource_thrashing
from webhook.policy.model import PatternType

from .factories import change, policy, resources, situation

CONTAINERS = 500


def many(before: str, after: str, *, at: float) -> object:
    moves = [change(before, after, container=f"c{i}", field=field)
             for i in range(CONTAINERS) for field in ("requests", "limits")]
    return resources(changes=moves, at=at)


@pytest.fixture
def counted(monkeypatch):
    calls = {"dimension": 0}
    original = ResourceChange.dimension

    def dimension(self):
        calls["dimension"] += 1
        return original.fget(self)

    monkeypatch.setattr(ResourceChange, "dimension", property(dimension))
    return calls


def test_a_change_of_thousands_of_dimensions_costs_linear_work(counted):
    history = [many("64Mi", "128Mi", at=-30), many("128Mi", "64Mi", at=-20)]
    proposed = many("64Mi", "128Mi", at=0)
    counted["dimension"] = 0
    finding = resource_thrashing.detect(situation(proposed, history), policy(PatternType.RESOURCE_THRASHING))

    assert finding is not None and finding.triggered
    assert "2 direction reversals of c0 memory limit" in finding.summary or "of c0 memory request" in finding.summary
    changes = 3 * 2 * CONTAINERS
    # Quadratic was ~dimensions × changes = 1,000 × 3,000; linear is a small multiple of the changes.
    assert counted["dimension"] <= 10 * changes, counted["dimension"]
