"""The OscillationPattern statistics from what a real gate recorded: detections, refusals by a
cooling period (not detections), an escalation and the approval that overrode it."""

from __future__ import annotations

import asyncio
import datetime
import subprocess
import sys

import asyncpg

from tests import reviews
from tests.integration.test_gate_decides import flap
from webhook.decision.decide import Outcome
from webhook.decision.statistics import OverrideKind, attribute, statistics
from webhook.policy.defaults import default_policies
from webhook.policy.model import PatternType, Strategy
from webhook.store.pattern_records import PatternRecords


def read(dsn: str):
    async def run():
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            records = PatternRecords(pool, cluster_id="default")
            now = await records.database_now()
            since = now - datetime.timedelta(days=30)
            return now, await records.detections(since=since), await records.overrides(since=since)
        finally:
            await pool.close()
    return asyncio.run(run())


def settled(dsn: str, expected: int):
    """The decisions are written behind the answer: poll until ``expected`` detections are there."""
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    while True:
        now, detections, overrides = read(dsn)
        if len(detections) >= expected or datetime.datetime.now() > deadline:
            return now, detections, overrides


def test_detections_and_overrides_come_from_the_recorded_decisions(gate, fresh_database):
    *_, cooled = flap(gate)
    assert cooled["status"]["code"] == 429
    assert gate.decide(reviews.scale(before=5, after=3))["allowed"] is False   # the cooling period refuses

    def restart() -> dict:
        return gate.decide(reviews.pipelinerun(action_type="restart_pod", target="shop/Deployment/api",
                                               alert="KubePodCrashLooping"))
    assert all(restart()["allowed"] for _ in range(3))
    assert restart()["status"]["code"] == 403
    approve = subprocess.run(
        [sys.executable, "-m", "webhook", "approve", "shop/deployment-api-ineffective-loop", "--reason", "known fix",
         "--approved-by", "oncall@example.com", "--postgres-dsn", fresh_database], capture_output=True, text=True)
    assert approve.returncode == 0, approve.stderr
    assert restart()["allowed"] is True

    now, detections, overrides = settled(fresh_database, 3)
    by_pattern = {(d.pattern, d.outcome) for d in detections}
    assert by_pattern == {(PatternType.SCALE_OSCILLATION, Outcome.DENY), (PatternType.INEFFECTIVE_LOOP, Outcome.DENY),
                          (PatternType.INEFFECTIVE_LOOP, Outcome.APPROVED)}
    assert len(detections) == 3                                  # the cooling-period refusal is not one
    scale = next(d for d in detections if d.pattern is PatternType.SCALE_OSCILLATION)
    assert scale.target.key == "shop/Deployment/cart" and scale.strategy is Strategy.COOLING_PERIOD
    assert scale.action_count is not None and scale.action_count >= 3 and scale.confidence is not None
    (override,) = overrides
    assert override.kind is OverrideKind.APPROVAL and override.pattern is PatternType.INEFFECTIVE_LOOP
    assert override.target.key == "shop/Deployment/api"

    policies = default_policies()
    found = attribute(detections, policies)
    loop = next(p for p in policies if p.pattern is PatternType.INEFFECTIVE_LOOP)
    numbers = statistics(found[loop.name], overrides, window=loop.window, now=now)
    assert (numbers.total_detections, numbers.refusals, numbers.false_positives) == (2, 1, 1)
    assert numbers.false_positive_rate == 1.0


def test_both_reads_can_use_their_partial_index(gate, fresh_database):
    # The pass runs every minute over 30 days of decisions: its WHERE must imply the indexes'
    # predicates, or PostgreSQL would scan the whole table. Seq scans off: the index is chosen
    # whenever it is usable at all, which is what this checks.
    from webhook.store import pattern_records

    async def plans():
        connection = await asyncpg.connect(fresh_database)
        try:
            await connection.execute("SET enable_seqscan = off")
            since = datetime.datetime.now(datetime.timezone.utc)
            detected = await connection.fetch("EXPLAIN " + pattern_records._DETECTIONS, "default", since,
                                              ["deny"], 10)
            overrides = await connection.fetch("EXPLAIN " + pattern_records._OVERRIDES, "default", since, 10)
            return ["\n".join(r[0] for r in detected), "\n".join(r[0] for r in overrides)]
        finally:
            await connection.close()

    detected, overrides = asyncio.run(plans())
    assert "admission_decisions_detected" in detected, detected
    assert "admission_decisions_overrides" in overrides, overrides


def test_one_replica_leads_a_pass_and_the_lock_ends_with_it(fresh_database):
    async def run():
        pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=4)
        try:
            first, second = PatternRecords(pool, cluster_id="default"), PatternRecords(pool, cluster_id="default")
            async with first.leading("pattern-status") as leads, second.leading("pattern-status") as also:
                during = (leads, also)
            async with second.leading("pattern-status") as after:
                return during, after
        finally:
            await pool.close()

    during, after = asyncio.run(run())
    assert during == (True, False)
    assert after is True
