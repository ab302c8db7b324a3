"""The benchmark harness's pure parts: the workload mix and the results table's arithmetic."""

from __future__ import annotations

import json
import math

from benchmarks.report import Row, percentile, table
from benchmarks.vegeta import AttackReport
from benchmarks.workload import Kind, Workload


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert math.isnan(percentile([], 0.5))


def test_a_target_is_met_from_the_right_side() -> None:
    assert Row("load", "p99", 9.0, "ms", limit=10).verdict == "met"
    assert Row("load", "p99", 11.0, "ms", limit=10).verdict == "NOT MET"
    assert Row("history", "ingest", 1500, "actions/s", limit=2000, higher_is_better=True).verdict == "NOT MET"
    assert Row("load", "p50", 3.0, "ms").verdict == ""
    assert "| load" in table([Row("load", "p99", 9.0, "ms", limit=10)])


def test_a_denial_is_not_an_error_but_a_timeout_is() -> None:
    report = AttackReport.from_vegeta({
        "requests": 10, "rate": 10.0, "throughput": 8.0, "status_codes": {"200": 8, "0": 1, "500": 1},
        "errors": ["context deadline exceeded"],
        "latencies": {"50th": 2_000_000, "95th": 4_000_000, "99th": 5_000_000, "max": 9_000_000},
    })
    assert report.errors == 2
    assert report.p99 == 5.0


def test_the_workload_mixes_every_kind_over_many_targets_with_full_deployments() -> None:
    workload = Workload(targets=200, oscillating_share=0.25)
    bodies = [json.loads(next(workload.bodies())) for _ in range(2000)]
    assert set(workload.counts) == set(Kind)
    assert 0.25 < workload.counts[Kind.REPLICAS] / 2000 < 0.35
    assert len({b["request"]["uid"] for b in bodies}) == 2000
    deployments = [b for b in bodies if b["request"]["kind"]["kind"] == "Deployment"]
    assert min(len(json.dumps(b["request"]["object"])) for b in deployments) > 3000
    targets = {(b["request"].get("namespace"), b["request"].get("name")) for b in deployments}
    assert len(targets) > 150


def test_oscillating_targets_flip_and_the_rest_move_one_way() -> None:
    workload = Workload(targets=10, oscillating_share=0.5, mix={Kind.SCALE: 1.0})
    seen: dict[str, list[int]] = {}
    for _ in range(300):
        request = workload.next_review()["request"]
        seen.setdefault(request["name"], []).append(request["object"]["spec"]["replicas"])
    assert set(seen["app-00000"]) == {3, 4}
    steady = seen["app-00009"]
    assert steady == sorted(steady) and len(set(steady)) == len(steady)
