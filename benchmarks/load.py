"""Parts ``load`` and ``memory``: the gate under a fixed request rate, against a no-op baseline."""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator

from benchmarks import stack, vegeta
from benchmarks.report import Row, ratio
from benchmarks.workload import Workload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("load and memory")
    group.add_argument("--rate", type=int, default=500, help="requests per second (open loop)")
    group.add_argument("--seconds", type=float, default=60, help="how long the measured load runs")
    group.add_argument("--warmup", type=float, default=10, help="seconds of unmeasured load first")
    group.add_argument("--targets", type=int, default=5000, help="distinct workloads in the request mix")
    group.add_argument("--oscillating", type=float, default=0.2, help="share of targets that oscillate")
    group.add_argument("--profile", type=pathlib.Path, help="py-spy the gate during the measured load into this "
                                                           "file (.svg flame graph, .json speedscope, .txt raw for benchmarks.profile_summary)")
    group.add_argument("--memory-requests", type=int, default=1_000_000)
    group.add_argument("--memory-rate", type=int, default=600)
    group.add_argument("--sample-every", type=int, default=100_000, help="requests between RSS samples")


@contextlib.contextmanager
def _work_dir(prefix: str) -> Iterator[pathlib.Path]:
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_load(args: argparse.Namespace) -> list[Row]:
    with _work_dir("sg-bench-load-") as work, stack.stores(work) as (postgres, redis), \
            stack.gate(name="load", work_dir=work, postgres=postgres, redis=redis) as gate:
        assert gate.process is not None
        pid = gate.process.pid
        roots = [gate.ca_file]
        bodies = Workload(targets=args.targets, oscillating_share=args.oscillating).bodies()
        url = f"{gate.url}/validate"
        if args.warmup:
            vegeta.attack(targets=vegeta.posts(url=url, bodies=bodies), rate=args.rate, seconds=args.warmup,
                          root_certs=roots, results=work / "warmup.bin")
        rss_before = stack.rss_mib(pid)
        with _profiling(pid, args.profile, seconds=args.seconds):
            measured = vegeta.attack(targets=vegeta.posts(url=url, bodies=bodies), rate=args.rate,
                                     seconds=args.seconds, root_certs=roots, results=work / "gate.bin")
        rss_after = stack.rss_mib(pid)
        outcomes = count_outcomes(work / "gate.bin")
        baseline = noop_baseline(tls_dir=gate.data_dir / "tls", work=work, args=args, seconds=args.seconds)
    where = f"{args.rate}/s for {args.seconds:g}s"
    decisions = f"{outcomes['allowed']} allowed, {outcomes['denied']} denied"
    errors = _error_note(measured)
    return [
        Row("load", "gate p50", measured.p50, "ms", note=where),
        Row("load", "gate p95", measured.p95, "ms"),
        Row("load", "gate p99", measured.p99, "ms", limit=10),
        Row("load", "gate max", measured.max, "ms"),
        Row("load", "gate errors", measured.errors, "", limit=0, note=errors),
        Row("load", "gate achieved rate", measured.throughput, "req/s", limit=args.rate * 0.99,
            higher_is_better=True, note=decisions),
        Row("load", "gate RSS", rss_after, "MiB", note=f"{rss_before:.0f} MiB before the measured load"),
        Row("load", "no-op p50", baseline.p50, "ms"),
        Row("load", "no-op p99", baseline.p99, "ms", note=f"errors {baseline.errors}"),
        Row("load", "gate p99 / no-op p99", ratio(measured.p99, baseline.p99), "×", limit=3),
    ]


def noop_baseline(*, tls_dir: pathlib.Path, work: pathlib.Path, args: argparse.Namespace,
                  seconds: float) -> vegeta.AttackReport:
    """The same workload at the same rate against the no-op webhook on the gate's certificate
    (its results in ``work / "noop.bin"``): what the stack costs without the gate."""
    with stack.noop_webhook(tls_dir=tls_dir, log=work / "noop.log") as (noop_url, _):
        targets = vegeta.posts(url=f"{noop_url}/validate", bodies=Workload(
            targets=args.targets, oscillating_share=args.oscillating).bodies())
        if args.warmup:
            vegeta.attack(targets=targets, rate=args.rate, seconds=args.warmup, root_certs=[tls_dir / "ca.crt"],
                          results=work / "noop-warmup.bin")
        return vegeta.attack(targets=targets, rate=args.rate, seconds=seconds, root_certs=[tls_dir / "ca.crt"],
                             results=work / "noop.bin")


def count_outcomes(results: pathlib.Path) -> Counter[str]:
    """Allowed and denied answers among the 200s (a denial is a decision, not an error)."""
    outcomes: Counter[str] = Counter()
    for body in vegeta.response_bodies(results):
        try:
            allowed = json.loads(body)["response"]["allowed"]
        except (ValueError, KeyError, TypeError):
            outcomes["unreadable"] += 1
            continue
        outcomes["allowed" if allowed else "denied"] += 1
    return outcomes


def _error_note(report: vegeta.AttackReport) -> str:
    if not report.errors:
        return ""
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(report.status_codes.items()) if not code.startswith("2"))
    return f"{codes}; {'; '.join(report.error_messages[:2])}"[:160]


@contextlib.contextmanager
def _profiling(pid: int, output: pathlib.Path | None, *, seconds: float) -> Iterator[None]:
    """py-spy the gate while the block runs (sampling costs a little CPU, so only when asked)."""
    if output is None:
        yield
        return
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    fmt = {".json": "speedscope", ".txt": "raw"}.get(output.suffix, "flamegraph")  # raw: benchmarks.profile_summary
    recorder = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                 "--rate", "200", "--format", fmt, "--output", str(output), "--nonblocking"])
    try:
        yield
    finally:
        recorder.wait(timeout=120)


def run_memory(args: argparse.Namespace) -> list[Row]:
    chunk = args.sample_every
    rows: list[Row] = []
    with _work_dir("sg-bench-memory-") as work, stack.stores(work) as (postgres, redis), \
            stack.gate(name="memory", work_dir=work, postgres=postgres, redis=redis) as gate:
        assert gate.process is not None
        pid = gate.process.pid
        bodies = Workload(targets=args.targets, oscillating_share=args.oscillating, seed=11).bodies()
        samples = [(0, stack.rss_mib(pid))]
        errors = 0
        sent = 0
        while sent < args.memory_requests:
            size = min(chunk, args.memory_requests - sent)
            report = vegeta.attack(targets=vegeta.posts(url=f"{gate.url}/validate", bodies=bodies),
                                   rate=args.memory_rate, seconds=size / args.memory_rate,
                                   root_certs=[gate.ca_file], results=work / "chunk.bin")
            sent += report.requests
            errors += report.errors
            samples.append((sent, stack.rss_mib(pid)))
            print(f"  memory: {sent:>9,} requests  RSS {samples[-1][1]:6.1f} MiB  p99 {report.p99:7.2f} ms  "
                  f"errors {report.errors}", flush=True)
    trail = ", ".join(f"{n // 1000}k: {mib:.0f}" for n, mib in samples)
    rows.append(Row("memory", "RSS at start", samples[0][1], "MiB"))
    rows.append(Row("memory", f"RSS after {sent:,} requests", samples[-1][1], "MiB", limit=150,
                    note=f"MiB by requests sent — {trail}"))
    growth = samples[-1][1] - samples[len(samples) // 2][1] if len(samples) > 2 else float("nan")
    rows.append(Row("memory", "RSS growth over the second half", growth, "MiB"))
    rows.append(Row("memory", "errors", errors, "", limit=0, note=f"at {args.memory_rate}/s"))
    return rows
