"""An OscillationAlert and PostgreSQL agree on every count (issue 13, item 7).

denied: requests the gate refused under the alert. warned: requests it admitted with the alert's
refusal as a warning (a person during a cooling period, warn-mode enforcement). The alert's status
is folded here from the same remembered decisions by the AlertWriter's own pure functions."""

from __future__ import annotations

from typing import Any

from tests import reviews
from tests.stress.stores_helpers import request_of, store_stack
from webhook.decision.decide import Decision
from webhook.engine.gate import Gate
from webhook.kube.alerts import next_status, work_for
from webhook.policy.provider import PolicyProvider
from webhook.settings import Settings


async def test_denied_and_warned_agree_between_the_alert_and_postgresql(fresh_database, fresh_redis_url, tmp_path):
    remembered: list[Decision] = []
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool") as history:
        gate = Gate(history=history, policies=PolicyProvider(), rules=Settings().actor_rules(),
                    on_remembered=remembered.append)
        steps = [(3, 5, reviews.AGENT), (5, 3, reviews.AGENT), (3, 5, reviews.AGENT),  # refused: forms the alert
                 (3, 4, reviews.PERSON), (3, 6, reviews.PERSON),                       # warned: a person's change
                 (3, 2, reviews.AGENT)]                                                 # refused by the period
        answers = [(await gate.review(request_of(reviews.scale(before=b, after=a, user=user)))).decision.allowed
                   for b, a, user in steps]
        assert answers == [True, True, False, True, True, False]
        row = await history.postgres.pool.fetchrow(
            "SELECT alert_name, occurrences, denied_requests, warned_requests FROM oscillation_detections")
    status: dict[str, Any] = {}
    for decision in remembered:
        work = work_for(decision, cluster_id="default")
        if work is not None:
            assert work.name == row["alert_name"]
            status = next_status(status, work, generation=None)
    assert (row["occurrences"], row["denied_requests"], row["warned_requests"]) == (1, 2, 2)
    assert (status["occurrences"], status["deniedRequests"], status["warnedRequests"]) == (1, 2, 2)


async def test_a_persons_would_be_refusals_are_warned_in_both(fresh_database, fresh_redis_url, tmp_path):
    """A person's change that forms a pattern is admitted with "would deny": a warning, never a denial
    (the same outcome warn-mode enforcement gives automation)."""
    remembered: list[Decision] = []
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool") as history:
        gate = Gate(history=history, policies=PolicyProvider(), rules=Settings().actor_rules(),
                    on_remembered=remembered.append)
        # A person's flapping: the detector fires, the person is warned (never refused).
        for before, after in [(3, 5), (5, 3), (3, 5), (5, 3)]:
            result = await gate.review(request_of(reviews.scale(before=before, after=after, user=reviews.PERSON)))
            assert result.decision.allowed
        row = await history.postgres.pool.fetchrow(
            "SELECT occurrences, denied_requests, warned_requests FROM oscillation_detections")
    status: dict[str, Any] = {}
    for decision in remembered:
        work = work_for(decision, cluster_id="default")
        if work is not None:
            status = next_status(status, work, generation=None)
    assert row["denied_requests"] == status["deniedRequests"] == 0
    assert row["warned_requests"] == status["warnedRequests"] >= 1
    assert row["occurrences"] == status["occurrences"]
