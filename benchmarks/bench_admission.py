"""Benchmark: decision latency and memory of a running gate, and the pure decision alone.

    python benchmarks/bench_admission.py [--requests 2000] [--targets 200]

Starts ``safety-gate serve`` on embedded PostgreSQL and Redis in a temporary directory,
sends a realistic mix (monotonic scaling, flapping that gets cooled, memory increases,
PipelineRuns) over HTTPS from one keep-alive client, and prints latency percentiles, the
server's resident memory, and the pure ``decide`` cost per call. Numbers only: nothing is
asserted, so a slow machine never fails a build.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests import reviews  # noqa: E402
from tests.gateproc import GateProcess  # noqa: E402


def workload(requests: int, targets: int, rng: random.Random) -> list[dict]:
    bodies = []
    replicas = {f"app-{i}": 3 for i in range(targets)}
    for _ in range(requests):
        index = rng.randrange(targets)
        name = f"app-{index}"
        agent = f"system:serviceaccount:team-{index}:agent"  # one agent per app: no cascading-failure budget hit
        roll = rng.random()
        if roll < 0.6:
            before = replicas[name]
            after = before + rng.choice((-1, 1)) if before > 1 else before + 1
            replicas[name] = after
            bodies.append(reviews.scale(name=name, before=before, after=after, user=agent))
        elif roll < 0.8:
            bodies.append(reviews.memory_change("64Mi", "128Mi", name=name, alert="KubePodOOMKilled", user=agent))
        else:
            bodies.append(reviews.pipelinerun(target=f"shop/Deployment/{name}", action_type="restart_pod", user=agent))
    return bodies


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_pure(iterations: int) -> float:
    from tests.unit.detection.factories import NOW, scale
    from webhook.admission.extract import Proposal
    from webhook.decision import GateState, decide
    from webhook.detection.situation import Situation
    from webhook.policy import ActorRules, default_policies

    history = [scale(3 + (i % 2), 4 - (i % 2), at=-100 + i) for i in range(60)]
    event = scale(3, 4)
    proposal = Proposal(event=event, username=event.actor, groups=(), dry_run=False, labels=None)
    situation = Situation(proposed=event, now=NOW, history=history)
    policies = {p.pattern: p for p in default_policies()}
    started = time.perf_counter()
    for _ in range(iterations):
        decide(proposal=proposal, situation=situation, policies=policies, state=GateState(), rules=ActorRules())
    return (time.perf_counter() - started) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--targets", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    bodies = workload(args.requests, args.targets, rng)
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as tmp, GateProcess(data_dir=pathlib.Path(tmp)) as gate:
        assert gate.process is not None
        rss_before = rss_mib(gate.process.pid)
        latencies, outcomes = [], {"allowed": 0, "denied": 0}
        started = time.perf_counter()
        for body in bodies:
            t0 = time.perf_counter()
            answer = gate.decide(body)
            latencies.append((time.perf_counter() - t0) * 1000)
            outcomes["allowed" if answer["allowed"] else "denied"] += 1
        elapsed = time.perf_counter() - started
        rss_after = rss_mib(gate.process.pid)
    print(f"safety-gate admission benchmark — {datetime.date.today()} — {args.requests} requests, "
          f"{args.targets} targets, one HTTPS keep-alive client")
    print(f"  throughput      {args.requests / elapsed:8.1f} req/s")
    print(f"  latency p50     {percentile(latencies, 0.50):8.2f} ms")
    print(f"  latency p95     {percentile(latencies, 0.95):8.2f} ms")
    print(f"  latency p99     {percentile(latencies, 0.99):8.2f} ms")
    print(f"  latency mean    {statistics.fmean(latencies):8.2f} ms")
    print(f"  outcomes        {outcomes['allowed']} allowed, {outcomes['denied']} denied")
    print(f"  server RSS      {rss_before:8.1f} MiB at start, {rss_after:8.1f} MiB after")
    print(f"  pure decide()   {bench_pure(2000):8.1f} µs per call (60-event history)")


if __name__ == "__main__":
    main()
