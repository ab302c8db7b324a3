"""Part ``sustained``: the gate at a fixed rate for a long time, watched from the inside.

The ``load`` part answers "how fast"; this one answers "does it stay that fast". While the
attack runs, a sampler records every ``--sample-seconds`` the gate's RSS, and every minute what
PostgreSQL spent its time on (``pg_stat_statements``, loaded for this run only), the sizes of
the history tables, autovacuum's last runs and Redis's SLOWLOG. Afterwards the attack is cut
into 1-minute windows (``benchmarks.timeline``), the no-op webhook is run at the same rate on
the same stack, and the per-minute p99 of both is plotted.

Everything it saw is written under ``--out`` (default ``/tmp/sg-bench-sustained``):
``gate-minutes.csv``, ``noop-minutes.csv``, ``samples.jsonl``, ``statements.txt`` and the plot
``p99-per-minute.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil

from benchmarks import stack, timeline, vegeta
from benchmarks.load import _work_dir, count_outcomes, noop_baseline
from benchmarks.report import Row, ratio
from benchmarks.workload import Workload

PG_SETTINGS = {"shared_preload_libraries": "pg_stat_statements,auto_explain", "pg_stat_statements.track": "all",
               "track_io_timing": "on", "auto_explain.log_min_duration": os.environ.get("SG_BENCH_EXPLAIN_MS", "50") + "ms", "auto_explain.log_nested_statements": "on"}
TABLES = ("resource_action_traces", "admission_decisions", "restrictions", "oscillation_detections",
          "action_status", "action_histories", "resource_references")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sustained")
    group.add_argument("--sustained-seconds", type=float, default=1800, help="length of the measured gate run")
    group.add_argument("--noop-seconds", type=float, default=300, help="length of the no-op run after it")
    group.add_argument("--sample-seconds", type=float, default=10, help="seconds between RSS samples")
    group.add_argument("--workers", type=int, default=1, help="gate worker processes (serve --workers)")
    group.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/sg-bench-sustained"))
    group.add_argument("--steps", default="100,150,200,250,300,400,500",
                       help="throughput: the rates (req/s) tried one after another, after the warm-up")
    group.add_argument("--step-seconds", type=float, default=45, help="throughput: seconds per rate")
    group.add_argument("--throughput-warmup", type=float, default=120,
                       help="throughput: seconds at the first rate first (every target warm in the cache)")
    group.add_argument("--profile-windows", action="store_true",
                       help="py-spy 30 s at the start and at the end of the run (collapsed stacks in --out)")


def run_sustained(args: argparse.Namespace) -> list[Row]:
    out: pathlib.Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--workers", str(args.workers)] if args.workers != 1 else []
    with _work_dir("sg-bench-sustained-") as work, stack.stores(work, postgres_settings=PG_SETTINGS) as (postgres, redis), \
            stack.gate(name="sustained", work_dir=work, postgres=postgres, redis=redis, extra_args=extra) as gate:
        assert gate.process is not None
        roots = [gate.ca_file]
        url = f"{gate.url}/validate"
        bodies = Workload(targets=args.targets, oscillating_share=args.oscillating).bodies()
        if args.warmup:
            vegeta.attack(targets=vegeta.posts(url=url, bodies=bodies), rate=args.rate, seconds=args.warmup,
                          root_certs=roots, results=work / "warmup.bin")
        _reset_statements(postgres.dsn)
        sampler = Sampler(pid=gate.process.pid, dsn=postgres.dsn, redis_url=redis.url, every=args.sample_seconds,
                          out=out)
        cpu_before = cpu_seconds(gate_pid=gate.process.pid)
        with sampler.running(), _profile_windows(gate.process.pid, out, enabled=args.profile_windows,
                                                 seconds=args.sustained_seconds):
            measured = vegeta.attack(targets=vegeta.posts(url=url, bodies=bodies), rate=args.rate,
                                     seconds=args.sustained_seconds, root_certs=roots, results=work / "gate.bin")
        cpu_after = cpu_seconds(gate_pid=gate.process.pid)
        shutil.copyfile(work / "gate.bin", out / "gate.bin")  # every result, for other windows than minutes
        gate_minutes = timeline.windows(work / "gate.bin")
        outcomes = count_outcomes(work / "gate.bin")
        _write_statements(postgres.dsn, out / "statements.txt")
        shutil.copyfile(postgres.log_file, out / "postgres.log")  # auto_explain's plans of slow statements
        baseline = noop_baseline(tls_dir=gate.data_dir / "tls", work=work, args=args, seconds=args.noop_seconds)
        noop_minutes = timeline.windows(work / "noop.bin")
    timeline.write_csv(gate_minutes, out / "gate-minutes.csv")
    timeline.write_csv(noop_minutes, out / "noop-minutes.csv")
    rss = [(s["t"] / 60, s["rss_mib"]) for s in sampler.samples if "rss_mib" in s]
    timeline.plot({"gate": gate_minutes, "no-op": noop_minutes}, out / "p99-per-minute.png", limit_ms=10, rss=rss,
                  title=f"safety-gate at {args.rate} req/s for {args.sustained_seconds / 60:g} min "
                        f"({args.workers} worker{'s' if args.workers != 1 else ''}), 2 cores, load generator included")
    first = gate_minutes[0].p99 if gate_minutes else float("nan")
    worst = max((w.p99 for w in gate_minutes), default=float("nan"))
    rss_values = [mib for _, mib in rss]
    where = f"{args.rate}/s for {args.sustained_seconds / 60:g} min, {args.workers} worker(s)"
    cpu = {name: (cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / max(measured.requests, 1)
           for name in cpu_after}
    # The second half alone: past the first touch of every target (cold reads, cache fills).
    timed = [sample for sample in sampler.samples if "cpu_s" in sample]
    if len(timed) >= 4:
        middle, end = timed[len(timed) // 2], timed[-1]
        served = args.rate * (end["t"] - middle["t"])
        cpu.update({f"{name}, second half": (end["cpu_s"][name] - middle["cpu_s"][name]) * 1000 / served
                    for name in ("gate", "postgres", "redis")})
    (out / "cpu.json").write_text(json.dumps(cpu, indent=1))
    return [
        *(Row("sustained", f"CPU per request: {name}", ms, "ms") for name, ms in cpu.items()),
        Row("sustained", "gate p50", measured.p50, "ms", note=where),
        Row("sustained", "gate p99", measured.p99, "ms", limit=10),
        Row("sustained", "gate max", measured.max, "ms"),
        Row("sustained", "gate errors", measured.errors, "", limit=0, note=_codes(measured)),
        Row("sustained", "achieved rate", measured.throughput, "req/s", limit=args.rate * 0.99,
            higher_is_better=True, note=f"{outcomes['allowed']} allowed, {outcomes['denied']} denied"),
        Row("sustained", "first minute p99", first, "ms"),
        Row("sustained", "worst minute p99 / first", ratio(worst, first), "×", limit=1.5,
            note=f"worst minute p99 {worst:.2f} ms"),
        Row("sustained", "no-op p99", baseline.p99, "ms", note=f"{args.noop_seconds / 60:g} min, errors "
                                                                 f"{baseline.errors}"),
        Row("sustained", "gate p99 / no-op p99", ratio(measured.p99, baseline.p99), "×", limit=3),
        Row("sustained", "RSS first / last", rss_values[0] if rss_values else float("nan"), "MiB",
            note=f"last {rss_values[-1]:.0f} MiB, max {max(rss_values):.0f}" if rss_values else ""),
    ]


def cpu_seconds(*, gate_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each part of the benchmark: the gate (and its
    workers), PostgreSQL (every backend), Redis, the load generator (vegeta) and this process,
    which generates the request bodies. Processes that ended are not counted (PostgreSQL's
    backends live as long as the gate's pools, so they are)."""
    totals = {"gate": 0.0, "gate (system)": 0.0, "postgres": 0.0, "redis": 0.0, "vegeta": 0.0, "driver": 0.0}
    gate_tree = {gate_pid}
    with contextlib.suppress(psutil.Error):
        gate_tree |= {child.pid for child in psutil.Process(gate_pid).children(recursive=True)}
    for process in psutil.process_iter(["pid", "name"]):
        try:
            name = process.info["name"] or ""
            if process.pid in gate_tree:
                part = "gate"
            elif name.startswith("postgres"):
                part = "postgres"
            elif name.startswith("redis"):
                part = "redis"
            elif name == "vegeta":
                part = "vegeta"
            elif process.pid == os.getpid():
                part = "driver"
            else:
                continue
            times = process.cpu_times()
            totals[part] += times.user + times.system
            if part == "gate":
                totals["gate (system)"] += times.system
        except psutil.Error:
            continue
    return totals


def run_throughput(args: argparse.Namespace) -> list[Row]:
    """The highest rate with p99 ≤ 10 ms for this many workers: one gate, warmed at the first rate
    until every target is in the cache, then each rate of ``--steps`` in turn (stopping after the
    first rate whose p99 is over 50 ms: past saturation the backlog only grows)."""
    rates = [int(rate) for rate in args.steps.split(",") if rate.strip()]
    extra = ["--workers", str(args.workers)] if args.workers != 1 else []
    rows: list[Row] = []
    best = 0
    with _work_dir("sg-bench-throughput-") as work, stack.stores(work, postgres_settings=PG_SETTINGS) as (postgres, redis), \
            stack.gate(name="throughput", work_dir=work, postgres=postgres, redis=redis, extra_args=extra) as gate:
        assert gate.process is not None
        url = f"{gate.url}/validate"
        bodies = Workload(targets=args.targets, oscillating_share=args.oscillating).bodies()
        vegeta.attack(targets=vegeta.posts(url=url, bodies=bodies), rate=rates[0], seconds=args.throughput_warmup,
                      root_certs=[gate.ca_file], results=work / "warmup.bin")
        for rate in rates:
            before, calls_before = cpu_seconds(gate_pid=gate.process.pid), redis_calls(redis.url)
            report = vegeta.attack(targets=vegeta.posts(url=url, bodies=bodies), rate=rate, seconds=args.step_seconds,
                                   root_certs=[gate.ca_file], results=work / f"step-{rate}.bin")
            after, calls_after = cpu_seconds(gate_pid=gate.process.pid), redis_calls(redis.url)
            gate_ms = (after["gate"] - before["gate"]) * 1000 / max(report.requests, 1)
            per_request = {name: (calls - calls_before.get(name, 0)) / max(report.requests, 1)
                           for name, calls in sorted(calls_after.items())}
            per_request = {name: calls for name, calls in per_request.items() if calls >= 0.01}
            print(f"  Redis commands per request at {rate}/s: "
                  + ", ".join(f"{name} {calls:.2f}" for name, calls in per_request.items()), flush=True)
            met = report.p99 <= 10 and report.errors == 0 and report.throughput >= rate * 0.99
            best = rate if met else best
            print(f"  {args.workers} worker(s) at {rate}/s: p50 {report.p50:.2f} ms, p99 {report.p99:.2f} ms, "
                  f"errors {report.errors}, gate CPU {gate_ms:.2f} ms/request", flush=True)
            rows.append(Row("throughput", f"{args.workers} worker(s) at {rate}/s: p99", report.p99, "ms", limit=10,
                            note=f"p50 {report.p50:.2f} ms, max {report.max:.0f} ms, errors {report.errors}, "
                                 f"gate CPU {gate_ms:.2f} ms/request"))
            if report.p99 > 50:
                break
    rows.append(Row("throughput", f"{args.workers} worker(s): highest rate with p99 ≤ 10 ms", best, "req/s",
                    higher_is_better=True))
    return rows


def redis_calls(url: str) -> dict[str, int]:
    """Calls per command so far (``INFO commandstats``; the calls a script makes count too, under
    their own names): the difference over a step, per request, is what a decision asks of Redis."""
    import redis as sync_redis

    with sync_redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}


def _codes(report: vegeta.AttackReport) -> str:
    return ", ".join(f"{code}: {n}" for code, n in sorted(report.status_codes.items()))


def _sql(dsn: str, query: str) -> list[dict[str, Any]]:
    import asyncpg

    async def run() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(dsn)
        try:
            return [dict(row) for row in await connection.fetch(query)]
        finally:
            await connection.close()

    return asyncio.run(run())


def _reset_statements(dsn: str) -> None:
    _sql(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    _sql(dsn, "SELECT pg_stat_statements_reset()")


_TOP_STATEMENTS = """
SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
       round(max_exec_time::numeric, 1) AS max_ms, rows, shared_blks_hit + shared_blks_read AS blocks,
       regexp_replace(left(query, 160), '\\s+', ' ', 'g') AS query
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15
"""


def _write_statements(dsn: str, path: pathlib.Path) -> None:
    rows = _sql(dsn, _TOP_STATEMENTS)
    lines = [f"{r['calls']:>9} calls {r['total_ms']:>10} ms total {r['mean_ms']:>8} ms mean {r['max_ms']:>8} ms max "
             f"{r['blocks'] / max(r['calls'], 1):>7.1f} blocks/call  {r['query']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")


# Summed over partitions: a partitioned table's own size is 0.
_SIZES = ", ".join(f"COALESCE((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('{t}')), "
                   f"pg_total_relation_size('{t}')) AS \"{t}\"" for t in TABLES)
_VACUUM = """
SELECT relname, n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables
WHERE relname = ANY(ARRAY[{tables}]) ORDER BY relname
""".format(tables=", ".join(f"'{t}'" for t in TABLES))


class Sampler:
    """Every ``every`` seconds: the gate's RSS (and its workers'); every minute: table sizes,
    dead tuples and autovacuum counts, the top statements so far, and Redis's SLOWLOG."""

    def __init__(self, *, pid: int, dsn: str, redis_url: str, every: float, out: pathlib.Path) -> None:
        self.pid, self.dsn, self.redis_url, self.every, self.out = pid, dsn, redis_url, every, out
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=30)
            with open(self.out / "samples.jsonl", "w") as output:
                for sample in self.samples:
                    output.write(json.dumps(sample, default=str) + "\n")

    def _run(self) -> None:
        started = time.monotonic()
        next_minute = 0.0
        while not self._stop.wait(self.every):
            elapsed = time.monotonic() - started
            sample: dict[str, Any] = {"t": round(elapsed, 1), "rss_mib": self._rss(),
                                      "cpu_s": cpu_seconds(gate_pid=self.pid)}
            if elapsed >= next_minute:
                next_minute += 60
                with contextlib.suppress(Exception):
                    sample["table_bytes"] = _sql(self.dsn, f"SELECT {_SIZES}")[0]
                    sample["vacuum"] = _sql(self.dsn, _VACUUM)
                    sample["top"] = _sql(self.dsn, _TOP_STATEMENTS)[:5]
                    sample["redis"] = self._redis()
            self.samples.append(sample)

    def _rss(self) -> float:
        """The gate and its worker processes, not the stores (they run outside it)."""
        try:
            process = psutil.Process(self.pid)
            return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2 ** 20
        except psutil.Error:
            return float("nan")

    def _redis(self) -> dict[str, Any]:
        import redis

        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            info = client.info("memory")
            slow = client.slowlog_get(5)
            client.slowlog_reset()
            return {"used_memory_mib": round(info["used_memory"] / 2 ** 20, 1), "dbsize": client.dbsize(),
                    "slowlog": [{"us": s["duration"], "command": str(s["command"])[:80]} for s in slow]}
        finally:
            client.close()


@contextlib.contextmanager
def _profile_windows(pid: int, out: pathlib.Path, *, enabled: bool, seconds: float) -> Iterator[None]:
    """py-spy for 30 s early and 30 s late in the run: where the time goes, and whether that moves."""
    if not enabled:
        yield
        return
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("--profile-windows needs py-spy (pip install py-spy)")

    def record(name: str, delay: float) -> None:
        time.sleep(delay)
        native = ["--native"] if os.environ.get("SG_BENCH_NATIVE") else []
        subprocess.run([py_spy, "record", *native, "--pid", str(pid), "--duration", "30", "--rate", "100", "--format", "raw",
                        "--output", str(out / f"profile-{name}.txt"), "--nonblocking"], check=False,
                       capture_output=True, timeout=120)

    threads = [threading.Thread(target=record, args=("early", 30), daemon=True),
               threading.Thread(target=record, args=("late", max(60.0, seconds - 45)), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.join(timeout=5)
