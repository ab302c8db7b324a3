"""Part ``apiserver``: ``kubectl scale`` through a real kube-apiserver, with and without the gate.

The e2e harness's ControlPlane (etcd + kube-apiserver, no controllers) holds the Deployments;
one keep-alive HTTPS client PATCHes their ``scale`` subresource one request after another,
as ``kubectl scale`` does, first with no webhook registered, then with the gate registered
exactly as the chart renders it. The ratio is what the gate adds to an API-server write.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import shutil
import tempfile
import time

import asyncpg
import httpx

from benchmarks import stack
from benchmarks.report import Row, percentile, ratio
from e2e.cluster import ControlPlane, deployment, register_webhook, wait_for

NAMESPACES = 10
GATE_NAMESPACE = "safety-gate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("apiserver")
    group.add_argument("--api-requests", type=int, default=3000, help="scale requests in each of the two runs")
    group.add_argument("--api-deployments", type=int, default=300)


def run_apiserver(args: argparse.Namespace) -> list[Row]:
    work = pathlib.Path(tempfile.mkdtemp(prefix="sg-bench-apiserver-"))
    try:
        with ControlPlane(work / "control-plane") as cluster, stack.stores(work) as (postgres, redis), \
                stack.gate(name="apiserver", work_dir=work, postgres=postgres, redis=redis) as gate:
            targets = _create_deployments(cluster, count=args.api_deployments)
            with _client(cluster) as client:
                _scale_all(client, targets, requests=min(200, args.api_requests), start=1)  # warm the API server
                without = _scale_all(client, targets, requests=args.api_requests, start=2)
                register_webhook(cluster, f"{gate.url}/validate", gate.ca_file.read_bytes(), GATE_NAMESPACE)
                _wait_gating(client, targets[0], dsn=postgres.dsn)
                _scale_all(client, targets, requests=min(200, args.api_requests), start=3)
                with_gate = _scale_all(client, targets, requests=args.api_requests, start=4)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    note = f"{args.api_requests:,} sequential PATCH deployments/scale over {len(targets)} Deployments"
    return [
        Row("apiserver", "scale p50 without the gate", percentile(without, 0.5), "ms", note=note),
        Row("apiserver", "scale p99 without the gate", percentile(without, 0.99), "ms"),
        Row("apiserver", "scale p50 with the gate", percentile(with_gate, 0.5), "ms"),
        Row("apiserver", "scale p99 with the gate", percentile(with_gate, 0.99), "ms"),
        Row("apiserver", "with / without, p50", ratio(percentile(with_gate, 0.5), percentile(without, 0.5)), "×",
            limit=1.2),
        Row("apiserver", "with / without, p99", ratio(percentile(with_gate, 0.99), percentile(without, 0.99)), "×",
            limit=1.2),
    ]


def _create_deployments(cluster: ControlPlane, *, count: int) -> list[tuple[str, str]]:
    namespaces = [f"bench-{i}" for i in range(NAMESPACES)]
    targets = [(namespaces[i % NAMESPACES], f"web-{i:04d}") for i in range(count)]
    cluster.apply({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces]})
    cluster.apply({"apiVersion": "v1", "kind": "List",
                   "items": [deployment(name, ns, replicas=1) for ns, name in targets]})
    return targets


def _client(cluster: ControlPlane) -> httpx.Client:
    return httpx.Client(base_url=cluster.server, verify=cluster.ssl_context(), timeout=30,
                        headers={"Content-Type": "application/merge-patch+json"})


def _scale(client: httpx.Client, target: tuple[str, str], replicas: int) -> None:
    namespace, name = target
    reply = client.patch(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                         content=f'{{"spec":{{"replicas":{replicas}}}}}')
    reply.raise_for_status()


def _scale_all(client: httpx.Client, targets: list[tuple[str, str]], *, requests: int, start: int) -> list[float]:
    """Latencies (ms) of ``requests`` scale changes, round-robin over the targets."""
    latencies = []
    for n in range(requests):
        replicas = start * 10 + n // len(targets) % 10 + 1  # each request really changes spec.replicas
        began = time.perf_counter()
        _scale(client, targets[n % len(targets)], replicas)
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def _wait_gating(client: httpx.Client, target: tuple[str, str], *, dsn: str) -> None:
    """The API server loads webhook configurations asynchronously: poll until the gate decides."""
    probe = iter(range(100, 10_000))

    async def decided() -> int:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetchval("SELECT count(*) FROM admission_decisions")
        finally:
            await connection.close()

    def seen() -> bool:
        _scale(client, target, next(probe))
        return asyncio.run(decided()) > 0

    wait_for(seen, timeout=60, interval=0.3, description="the API server to call the gate")
