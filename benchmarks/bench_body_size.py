"""Benchmark: the cost of a decision on the largest bodies the gate accepts (3 MB).

    python benchmarks/bench_body_size.py [--requests 20]

Prints, for ~3 MB reviews of three shapes (a Deployment whose 256 containers all change memory,
a Deployment with one container and 3 MB of environment, a PipelineRun with 3 MB of params):
the in-process cost of each step of a decision (depth check, JSON parse, type checks, extraction,
the pure decision against a short history), then the round trip through a running gate over
HTTPS on embedded PostgreSQL and Redis. Last, the resource-thrashing detector alone on templates
of 1,000 to 12,000 containers, to show its cost grows linearly (it was quadratic: 52 s at 12,000).
Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests import reviews  # noqa: E402
from tests.gateproc import GateProcess  # noqa: E402

TARGET_BYTES = 3_000_000


def containers(count: int, memory: str, *, padding: int) -> list[dict]:
    env = [{"name": f"VAR_{i}", "value": "v" * 100} for i in range(padding)]
    return [{"name": f"c{i}", "image": f"registry.example/c{i}:1.0", "env": env,
             "resources": {"requests": {"cpu": "100m", "memory": memory}, "limits": {"memory": memory}}}
            for i in range(count)]


def many_containers(name: str, memory_before: str, memory_after: str) -> dict:
    old, new = reviews.deployment(name), reviews.deployment(name)
    old["spec"]["template"]["spec"]["containers"] = containers(256, memory_before, padding=44)
    new["spec"]["template"]["spec"]["containers"] = containers(256, memory_after, padding=44)
    return reviews.workload_update(old, new)


def big_environment(name: str, memory_before: str, memory_after: str) -> dict:
    old = reviews.deployment(name, memory_limit=memory_before)
    new = reviews.deployment(name, memory_limit=memory_after)
    for obj in (old, new):
        obj["spec"]["template"]["spec"]["containers"][0]["env"] = [
            {"name": f"VAR_{i}", "value": "v" * 100} for i in range(TARGET_BYTES // 2 // 130)]
    return reviews.workload_update(old, new)


def big_pipelinerun(name: str, _before: str, _after: str) -> dict:
    params = [{"name": "TARGET_RESOURCE", "value": f"shop/Deployment/{name}"}, {"name": "ACTION_TYPE",
              "value": "restart_pod"}]
    params += [{"name": f"P{i}", "value": "v" * 100} for i in range(TARGET_BYTES // 130)]
    return reviews.pipelinerun(params=params)


SHAPES: dict[str, Callable[[str, str, str], dict]] = {
    "Deployment, 256 containers' memory": many_containers,
    "Deployment, 1 container + 3 MB env": big_environment,
    "PipelineRun, 3 MB of params": big_pipelinerun,
}


def timed(step: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median milliseconds of ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = step()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def pure_steps(body: bytes, repeat: int) -> dict[str, float]:
    from webhook.admission import review as parsing
    from webhook.admission.extract import extract
    from webhook.decision import GateState, decide
    from webhook.decision.decide import prepare
    from webhook.detection.situation import Situation
    from webhook.policy import ActorRules, default_policies

    now = datetime.datetime.now(datetime.timezone.utc)
    rules = ActorRules()
    policies = {p.pattern: p for p in default_policies()}
    steps: dict[str, float] = {}
    steps["depth check"], _ = timed(lambda: parsing._too_deep(body), repeat)
    loaded, _ = timed(lambda: parsing._load(body), repeat)            # the depth check, then json.loads
    parsed, _ = timed(lambda: parsing.parse_review(body), repeat)     # all of it, then the type checks
    steps["JSON parse"] = max(0.0, loaded - steps["depth check"])
    steps["type checks"] = max(0.0, parsed - loaded)
    request = parsing.parse_review(body).request
    steps["extract"], proposal = timed(lambda: extract(request, now=now), repeat)
    assert proposal is not None
    earlier = [proposal.event.replace(uid=f"h{i}", at=now - datetime.timedelta(minutes=30 - 10 * i),
                                      actor_class=rules.classify(proposal.username, proposal.groups))
               for i in range(2)]

    def decision() -> object:
        event = prepare(proposal, rules=rules, history=earlier)
        situation = Situation(proposed=event, now=now, history=earlier)
        return decide(proposal=proposal, situation=situation, policies=policies, state=GateState(), rules=rules)

    steps["decide (pure)"], _ = timed(decision, repeat)
    return steps


def detector_scaling() -> list[tuple[int, float]]:
    from tests.unit.detection.factories import change, policy, resources, situation
    from webhook.detection import resource_thrashing
    from webhook.policy.model import PatternType

    rows = []
    for count in (1000, 4000, 12000):
        def event(before: str, after: str, at: float, count: int = count) -> object:
            return resources(at=at, changes=[change(before, after, container=f"c{i}", field=field)
                                             for i in range(count) for field in ("requests", "limits")])

        history = [event("64Mi", "128Mi", -30), event("128Mi", "64Mi", -20)]
        proposed = event("64Mi", "128Mi", 0)
        ms, _ = timed(lambda proposed=proposed, history=history: resource_thrashing.detect(situation(proposed, history),
                                                        policy(PatternType.RESOURCE_THRASHING)), 3)
        rows.append((count, ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="round trips per shape")
    args = parser.parse_args()
    print(f"safety-gate body-size benchmark — {datetime.date.today()}")
    bodies = {label: json.dumps(build("bench", "64Mi", "128Mi")).encode() for label, build in SHAPES.items()}
    for label, body in bodies.items():
        steps = pure_steps(body, repeat=5)
        total = sum(steps.values())
        print(f"\n  {label}: {len(body) / 1e6:.2f} MB — in process {total:.1f} ms")
        for step, ms in steps.items():
            print(f"    {step:<16}{ms:8.1f} ms")

    print(f"\n  round trip over HTTPS, embedded stores, median / max of {args.requests}:")
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp, GateProcess(data_dir=pathlib.Path(tmp)) as gate:
        for index, (label, build) in enumerate(SHAPES.items()):
            latencies, outcomes = [], {"allowed": 0, "denied": 0}
            for n in range(args.requests):
                before, after = ("64Mi", "128Mi") if n % 2 == 0 else ("128Mi", "64Mi")
                body = build(f"t{n % 4}-{uuid.uuid4().hex[:6]}" if n % 5 == 0 else f"t{n % 4}", before, after)
                body["request"]["userInfo"]["username"] = f"system:serviceaccount:bench:agent-{index}"
                raw = json.dumps(body).encode()
                started = time.perf_counter()
                reply = gate.post(raw)
                latencies.append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, reply.text[:300]
                outcomes["allowed" if reply.json()["response"]["allowed"] else "denied"] += 1
            print(f"    {label:<38}{statistics.median(latencies):8.1f} ms {max(latencies):8.1f} ms   "
                  f"({outcomes['allowed']} allowed, {outcomes['denied']} denied)")

    print("\n  resource-thrashing detector alone (2 dimensions per container, 3 events in the window):")
    for count, ms in detector_scaling():
        print(f"    {count:>6} containers {ms:10.1f} ms   ({ms / count * 1000:.1f} µs per container)")


if __name__ == "__main__":
    main()
