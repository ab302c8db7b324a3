"""Part ``retention-load``: decisions while the background jobs (retention, the effectiveness
refresh, the summaries, the outbox drain) work on the seeded history (issue 15: "background work
never stalls decisions").

Uses the ``history`` part's seeded database (same ``--seed-*`` options, ``--reuse-seed``). A fresh
seed holds nothing past its max age, and each run removes what it finds, so before the gate starts
the part adds ``--expired-share`` of the seed's actions dated just past the default max age
(:func:`benchmarks.seed.add_expired`): every seeded target then has work, and the month partition
lying wholly before the cutoff is dropped.

The gate runs with its own retention and effectiveness jobs off, so nothing runs at a time of its
choosing. One open-loop attack runs throughout: ``--quiet-seconds`` of baseline, then each job
followed by ``--quiet-seconds``:

* one retention run as the gate's job runs it (``RetentionRunner`` on a batch pool);
* one ``EffectivenessService.refresh``;
* a summaries run: ``Summariser.run_pass`` as the leader's loop calls it (no pause while behind),
  from no cursor (a new leader on a large history), for ``--summary-seconds``. It writes to no API
  server: its writer gets a client that takes every write at once (:class:`_AcceptingKube`), so the
  phase measures the summariser's PostgreSQL work (its writes keep their real pacing);
* an outbox drain: ``--outbox-entries`` decisions queued as the outage path queues them
  (``HistoryStore.remember`` with PostgreSQL marked down, onto the Redis stream every replica
  shares) and drained by the gate itself at its store upkeep. The harness pushes them, as another
  replica would: the draining gate never saw PostgreSQL down, so its decisions do not read the
  waiting entries meanwhile (a replica that pushed during a real outage does, until it sees the
  stream empty). The phase runs from the first push until the stream is empty (or
  ``--outbox-timeout``).

The jobs run in a child process of their own (the drain excepted, which is the gate's): in the
driver they would share its interpreter with the thread that feeds vegeta, and a busy run would
lower the offered rate instead of showing up as latency. In the gate, the retention, refresh and
summaries share the event loop with decisions; here they do not, so Python work they do is not
counted against decisions.

The attack is cut into 1-second windows; each phase reports its worst second (p99 and max). Every
window is written to ``--retention-out``/``seconds.csv``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg

from benchmarks import history, seed, stack, timeline, vegeta
from benchmarks.report import Row
from benchmarks.workload import Workload
from webhook.store.migrate import migrate

PART = "retention-load"
# The gate's own jobs off: the harness decides when background work runs.
JOBS_OFF = {"SAFETY_GATE_RETENTION_INTERVAL": "0", "SAFETY_GATE_EFFECTIVENESS_INTERVAL": "0"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("retention-load (uses the history part's --seed-* and --reuse-seed)")
    group.add_argument("--retention-rate", type=int, default=200, help="decisions per second during the runs")
    group.add_argument("--quiet-seconds", type=float, default=20, help="load before and after each run")
    group.add_argument("--expired-share", type=float, default=0.1,
                       help="actions added past the max age before the run, as a share of --seed-actions")
    group.add_argument("--no-effectiveness", dest="effectiveness", action="store_false",
                       help="skip the effectiveness refresh after the retention run")
    group.add_argument("--summary-seconds", type=float, default=30,
                       help="how long the summaries run goes on (0: no summaries phase)")
    group.add_argument("--outbox-entries", type=int, default=20_000,
                       help="decisions queued in the outbox, then drained by the gate (0: no outbox phase)")
    group.add_argument("--outbox-timeout", type=float, default=300,
                       help="seconds the outbox phase waits for the drain before it gives up and reports what is left")
    group.add_argument("--retention-out", type=pathlib.Path, default=pathlib.Path("/tmp/sg-bench-retention-load"))


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    start: float  # unix seconds
    end: float


@dataclasses.dataclass(frozen=True)
class Second:
    at: int  # unix second
    latencies: list[float]  # sorted, ms
    errors: int


def run_retention_load(args: argparse.Namespace) -> list[Row]:
    data_dir = history.seed_dir(args)
    if not args.reuse_seed:
        shutil.rmtree(data_dir, ignore_errors=True)
    out: pathlib.Path = args.retention_out
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with stack.stores(data_dir) as (postgres, redis_server):
        plan = seed.Plan(actions=args.seed_actions, targets=args.seed_targets, days=args.seed_days)
        seeded = asyncio.run(seed.ensure_seeded(postgres.dsn, plan=plan, marker=data_dir / "seeded.json"))
        expired = int(args.seed_actions * args.expired_share)
        began = time.perf_counter()
        if expired:
            asyncio.run(seed.add_expired(postgres.dsn, plan=plan, count=expired,
                                         max_age=datetime.timedelta(days=90)))
        rows.append(Row(PART, "actions stored", seeded.actions + expired, "",
                        note=f"{seeded.actions:,} seeded + {expired:,} past max age "
                             f"(added in {time.perf_counter() - began:.0f} s); {plan.targets:,} targets"))
        # Migrated here, not by the gate at its start (30 s bound there): a migration that builds an
        # index over the whole history would not finish in time, as the chart's migration Job does.
        began = time.perf_counter()
        try:
            applied = asyncio.run(migrate(postgres.dsn))
        except asyncpg.PostgresError as exc:  # a seed another branch migrated: the gate retries and says so
            rows.append(Row(PART, "migrations applied first", math.nan, "", note=f"failed: {exc}"[:160]))
        else:
            if applied:
                rows.append(Row(PART, "migrations applied first", time.perf_counter() - began, "s",
                                note=", ".join(applied)))
        work = data_dir / "retention-load"
        shutil.rmtree(work, ignore_errors=True)
        with stack.gate(name=PART, work_dir=work, postgres=postgres, redis=redis_server, env=JOBS_OFF) as gate:
            url = f"{gate.url}/validate"
            bodies = Workload(targets=args.targets, oscillating_share=args.oscillating).bodies()
            if args.warmup:
                vegeta.attack(targets=vegeta.posts(url=url, bodies=bodies), rate=args.retention_rate,
                              seconds=args.warmup, root_certs=[gate.ca_file], results=work / "warmup.bin")
            results = work / "attack.bin"
            jobs: dict[str, dict[str, Any]] = {}
            phases: list[Phase] = []
            with _attack(url=url, bodies=bodies, rate=args.retention_rate, root_certs=[gate.ca_file],
                         results=results):
                started = time.time()
                time.sleep(args.quiet_seconds)
                phases.append(Phase("before", started, time.time()))
                for job in _jobs(args):
                    jobs[job] = _run_job(job, dsn=postgres.dsn, redis_url=redis_server.url, args=args)
                    phases.append(Phase(job, jobs[job]["started_at"], jobs[job]["ended_at"]))
                    time.sleep(args.quiet_seconds)
                    phases.append(Phase(f"after {job}", phases[-1].end, time.time()))
        shutil.copyfile(results, out / "attack.bin")
    seconds = _seconds(results)
    _write_csv(seconds, phases, out / "seconds.csv")
    rows += _job_rows(jobs)
    busy = jobs.get("retention", {}).get("busy", {})
    rows += [row for phase in phases
             for row in _phase_rows(phase, seconds, busy=busy if phase.name == "retention" else {})]
    return rows


@contextlib.contextmanager
def _attack(*, url: str, bodies: Iterator[bytes], rate: int, root_certs: Sequence[pathlib.Path],
            results: pathlib.Path) -> Iterator[None]:
    """An open-loop attack with no set length: it runs until the block ends (SIGINT, on which
    vegeta stops sending and writes out every result)."""
    command = [str(vegeta.ensure_vegeta()), "attack", "-lazy", "-format=json", f"-rate={rate}/1s", "-duration=0",
               "-timeout=10s", "-http2=false", "-keepalive=true", "-workers=20",
               f"-root-certs={','.join(str(p) for p in root_certs)}", f"-output={results}"]
    errors = results.with_suffix(".stderr")
    with open(errors, "wb") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=stderr)
    assert process.stdin is not None
    feeder = threading.Thread(target=_feed, args=(process.stdin, vegeta.posts(url=url, bodies=bodies)), daemon=True)
    feeder.start()
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        feeder.join(timeout=5)
    if process.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"vegeta attack failed ({process.returncode}): {errors.read_text()[-2000:]}")


def _feed(stdin: Any, targets: Iterator[bytes]) -> None:
    try:
        for line in targets:
            stdin.write(line)
    except (BrokenPipeError, ValueError, OSError):
        pass  # vegeta stopped and closed its end


JOBS = ("retention", "effectiveness", "summaries", "outbox drain")


def _jobs(args: argparse.Namespace) -> list[str]:
    skipped = {"effectiveness": not args.effectiveness, "summaries": not args.summary_seconds,
               "outbox drain": not args.outbox_entries}
    return [job for job in JOBS if not skipped.get(job)]


def _run_job(job: str, *, dsn: str, redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One background job in a child process (see the module docstring); its summary as JSON,
    with the wall-clock times of the job itself (not of the child's start)."""
    options = json.dumps({"dsn": dsn, "redis_url": redis_url, "summary_seconds": args.summary_seconds,
                          "outbox_entries": args.outbox_entries,
                          "outbox_timeout": args.outbox_timeout, "seed_targets": args.seed_targets})
    done = subprocess.run([sys.executable, "-m", "benchmarks.retention_load", job, options], check=True,
                          capture_output=True, text=True)
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


async def _retention(options: dict[str, Any]) -> dict[str, Any]:
    """As ``webhook.server.jobs`` runs it: the batch pool (no statement timeout, 4 connections)."""
    from webhook.retention.runner import RetentionRunner
    from webhook.store.postgres import create_pool

    pool = await create_pool(options["dsn"], min_size=0, max_size=4, command_timeout=None)
    try:
        runner = RetentionRunner(pool, cluster_id=seed.CLUSTER_ID)
        busy, calls = _trace_steps(runner.repository)
        started_at, started = time.time(), time.perf_counter()
        report = await runner.run()
        took, ended_at = time.perf_counter() - started, time.time()
    finally:
        await pool.close()
    return {"started_at": started_at, "ended_at": ended_at, "seconds": took, "busy": busy, "calls": calls, "result": report.result, "actions_removed": report.actions_removed,
            "targets_examined": report.targets_examined, "partitions_dropped": report.partitions_dropped,
            "partitions_kept_busy": report.partitions_kept_busy, "error": report.error}


STEPS = ("mark_pattern_examples", "targets_over_limits", "traces", "delete_traces", "expire_untargeted",
         "ensure_partition", "partitions", "drop_partition")


def _trace_steps(repository: Any) -> tuple[dict[str, dict[int, float]], dict[str, int]]:
    """Wrap the run's statements (the ``RetentionRepository`` methods) to record, per step and
    per unix second, how long the step was waiting on PostgreSQL: so the worst second of the run
    can be put down to a step. What no step covers is the runner's own Python (the planning)."""
    busy: dict[str, dict[int, float]] = {name: {} for name in STEPS}
    calls = dict.fromkeys(STEPS, 0)

    def traced(name: str, method: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            began = time.time()
            try:
                return await method(*args, **kwargs)
            finally:
                _spread(busy[name], began, time.time())

        return call

    for name in STEPS:
        setattr(repository, name, traced(name, getattr(repository, name)))
    return busy, calls


def _spread(seconds: dict[int, float], start: float, end: float) -> None:
    second = int(start)
    while second < end:
        seconds[second] = seconds.get(second, 0.0) + min(end, second + 1) - max(start, second)
        second += 1


async def _effectiveness(options: dict[str, Any]) -> dict[str, Any]:
    """``EffectivenessService.refresh`` on the batch pool, as the gate's effectiveness job calls it."""
    from webhook.effectiveness.service import EffectivenessService
    from webhook.store.history import HistoryStore
    from webhook.store.postgres import PostgresStore, create_pool

    pool = await create_pool(options["dsn"], min_size=0, max_size=4, command_timeout=None)
    try:
        service = EffectivenessService(history=HistoryStore(postgres=PostgresStore(pool, cluster_id=seed.CLUSTER_ID),
                                                            cache=None), pool=pool)
        started_at, started = time.time(), time.perf_counter()
        aggregates = await service.refresh(now=datetime.datetime.now(datetime.timezone.utc))
        took, ended_at = time.perf_counter() - started, time.time()
    finally:
        await pool.close()
    return {"started_at": started_at, "ended_at": ended_at, "seconds": took, "aggregates": len(aggregates), "result": "success", "error": None}


class _AcceptingKube:
    """Stands in for the API server in the summaries phase: every write is taken at once, every
    list is empty (a leader that finds no summaries yet, as on a fresh install)."""

    timeout = 10.0

    class custom:  # noqa: N801 - the attribute the summariser's writer calls, as on KubeClient
        @staticmethod
        def patch_namespaced_custom_object(*args: Any, **kwargs: Any) -> dict[str, Any]:
            return {}

        @staticmethod
        def delete_namespaced_custom_object(*args: Any, **kwargs: Any) -> dict[str, Any]:
            return {}

        @staticmethod
        def list_cluster_custom_object(*args: Any, **kwargs: Any) -> dict[str, Any]:
            return {"items": [], "metadata": {}}

    async def call(self, fn: Any, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


async def _summaries(options: dict[str, Any]) -> dict[str, Any]:
    """Passes of the summariser as its loop runs them on the leader (no pause while behind), from no
    cursor: a new leader on a large history, its worst case. The batch pool, as in the gate."""
    from webhook.kube.summaries import Summariser
    from webhook.store.postgres import create_pool

    pool = await create_pool(options["dsn"], min_size=0, max_size=4, command_timeout=None)
    passes, totals = 0, {"changes": 0, "applied": 0, "metrics_applied": 0}
    try:
        await pool.execute("DELETE FROM summary_cursors WHERE cluster_id = $1", seed.CLUSTER_ID)
        summariser = Summariser(_AcceptingKube(), pool=pool, cluster_id=seed.CLUSTER_ID,  # type: ignore[arg-type]
                                gate_namespace="safety-gate")
        started_at, started = time.time(), time.perf_counter()
        while time.perf_counter() - started < options["summary_seconds"]:
            report = await summariser.run_pass()
            passes += 1
            for key in totals:
                totals[key] += getattr(report, key)
            if report.caught_up:
                break
        took, ended_at = time.perf_counter() - started, time.time()
        await summariser.stop()
    finally:
        await pool.close()
    return {"started_at": started_at, "ended_at": ended_at, "seconds": took, "passes": passes, **totals}


async def _outbox(options: dict[str, Any]) -> dict[str, Any]:
    """Queue ``outbox_entries`` decisions as the outage path does (``remember`` with PostgreSQL
    marked down: onto the shared Redis stream), and wait while the gate drains them at its store
    upkeep (every second). The gate starts draining while the queue still fills, as a recovered
    PostgreSQL does while other replicas still push, so the phase runs from the first push until
    the stream is empty."""
    from webhook.actions.model import ActionEvent, ActorClass
    from webhook.store.cache import RedisCache
    from webhook.store.effects import Effects
    from webhook.store.history import HistoryStore
    from webhook.store.outbox import Outbox
    from webhook.store.postgres import PostgresStore, create_pool

    plan = seed.Plan(actions=1, targets=options["seed_targets"], days=1)
    pool = await create_pool(options["dsn"], min_size=0, max_size=1)
    cache = RedisCache.from_url(options["redis_url"], cluster_id=seed.CLUSTER_ID, horizon=datetime.timedelta(hours=24))
    stream = f"sg:{seed.CLUSTER_ID}:outbox"
    outbox = Outbox(redis=cache.client, stream=stream, spool=pathlib.Path("/nonexistent/outbox.jsonl"))
    history = HistoryStore(postgres=PostgresStore(pool, cluster_id=seed.CLUSTER_ID), cache=cache, outbox=outbox)
    history.postgres_up = False  # PostgreSQL "down": every decision goes to the outbox
    run = f"bench-{int(time.time())}"
    uids = [f"{run}-{i}" for i in range(options["outbox_entries"])]
    try:
        started_at = time.time()
        for i, uid in enumerate(uids):
            now = datetime.datetime.now(datetime.timezone.utc)
            target = plan.target(i * 7919 % plan.targets)
            event = ActionEvent(uid=uid, at=now, target=target, action_type="scale_deployment",
                                actor=plan.actor(i), actor_class=ActorClass.AUTOMATION, replicas_before=3,
                                replicas_after=4)
            effects = Effects(uid=event.uid, decided_at=now, event=event, record=True, outcome="allow", allowed=True,
                              code=None, pattern=None, strategy=None, message=None, warnings=(), latency_ms=1.0)
            where = await history.remember(effects, now=now)
            if where != "redis":
                raise RuntimeError(f"an outbox entry went to {where}, not the Redis stream")
        queued_at = time.time()
        while (left := await cache.client.xlen(stream)) and time.time() - started_at < options["outbox_timeout"]:
            await asyncio.sleep(0.05)
        ended_at = time.time()
        landed = await pool.fetchval("SELECT count(*) FROM admission_decisions WHERE request_uid = ANY($1::text[])",
                                     uids)
    finally:
        await cache.close()
        await pool.close()
    return {"started_at": started_at, "ended_at": ended_at, "seconds": ended_at - started_at,
            "queued_seconds": queued_at - started_at, "entries": options["outbox_entries"], "landed": landed,
            "left": left}


def _seconds(results: pathlib.Path) -> list[Second]:
    latencies: dict[int, list[float]] = {}
    errors: dict[int, int] = {}
    for at, latency, code in timeline.results(results):
        second = int(at)
        latencies.setdefault(second, []).append(latency)
        if not 200 <= code < 300:
            errors[second] = errors.get(second, 0) + 1
    return [Second(at=second, latencies=sorted(values), errors=errors.get(second, 0))
            for second, values in sorted(latencies.items())]


def _in_phase(second: Second, phase: Phase) -> bool:
    """A second belongs to a job's phase if it overlaps the job at all (a short run still gets
    its second); a quiet phase keeps only the seconds wholly inside it."""
    if phase.name in JOBS:
        return second.at + 1 > phase.start and second.at < phase.end
    return second.at >= math.ceil(phase.start) and second.at + 1 <= phase.end


def _phase_rows(phase: Phase, seconds: Sequence[Second], *, busy: dict[str, dict[str, float]]) -> list[Row]:
    inside = [s for s in seconds if _in_phase(s, phase)]
    if not inside:
        return [Row(PART, f"{phase.name}: decisions", math.nan, "", note="no whole second in this phase")]
    worst_p99 = max(inside, key=lambda s: timeline.percentile(s.latencies, 0.99))
    worst_max = max(inside, key=lambda s: s.latencies[-1])
    every = sorted(latency for s in inside for latency in s.latencies)
    requests = len(every)
    errors = sum(s.errors for s in inside)
    where = f"{len(inside)} s, {requests / len(inside):.0f} req/s"
    return [
        Row(PART, f"{phase.name}: worst second p99", timeline.percentile(worst_p99.latencies, 0.99), "ms",
            note=f"second {worst_p99.at - math.floor(phase.start)} of the phase; {where}{_steps_in(busy, worst_p99)}"),
        Row(PART, f"{phase.name}: worst second max", worst_max.latencies[-1], "ms",
            note=f"second {worst_max.at - math.floor(phase.start)} of the phase{_steps_in(busy, worst_max)}"),
        Row(PART, f"{phase.name}: p99 over the phase", timeline.percentile(every, 0.99), "ms",
            note=f"p50 {timeline.percentile(every, 0.5):.2f} ms"),
        Row(PART, f"{phase.name}: errors", errors, "", limit=0, note=f"of {requests:,} decisions"),
    ]


def _steps_in(busy: dict[str, dict[str, float]], second: Second) -> str:
    """The retention steps that were waiting on PostgreSQL during ``second`` (JSON keys: strings)."""
    inside = sorted(((seconds.get(str(second.at), 0.0), name) for name, seconds in busy.items()), reverse=True)
    named = [f"{name} {share:.2f} s" for share, name in inside if share >= 0.01]
    return f"; run in: {', '.join(named) or 'its own Python'}" if busy else ""


def _job_rows(jobs: dict[str, dict[str, Any]]) -> list[Row]:
    rows = []
    retention = jobs.get("retention")
    if retention is not None:
        rows += [Row(PART, "retention run", retention["seconds"], "s",
                     note=f"{retention['result']}; {retention['targets_examined']:,} targets examined; "
                          f"{retention['error'] or ''}"[:160]),
                 Row(PART, "actions removed", retention["actions_removed"], "",
                     note=f"partitions dropped: {', '.join(retention['partitions_dropped']) or 'none'}; kept busy: "
                          f"{', '.join(retention['partitions_kept_busy']) or 'none'}")]
        rows += [Row(PART, f"retention step: {name}", sum(retention["busy"][name].values()), "s",
                     note=f"{calls:,} call(s), waiting on PostgreSQL")
                 for name, calls in retention["calls"].items() if calls]
    effectiveness = jobs.get("effectiveness")
    if effectiveness is not None:
        rows.append(Row(PART, "effectiveness refresh", effectiveness["seconds"], "s",
                        note=f"{effectiveness['aggregates']} aggregates stored"))
    summaries = jobs.get("summaries")
    if summaries is not None:
        rows.append(Row(PART, "summaries run", summaries["seconds"], "s",
                        note=f"{summaries['passes']} pass(es), {summaries['changes']:,} changed targets, "
                             f"{summaries['applied']:,} objects written ({summaries['metrics_applied']} metrics)"))
    drain = jobs.get("outbox drain")
    if drain is not None:
        rows.append(Row(PART, "outbox drain", drain["seconds"], "s",
                        note=f"first push to empty stream; {drain['entries']:,} queued in "
                             f"{drain['queued_seconds']:.1f} s; {drain['landed']:,} landed in admission_decisions"
                             + (f"; GAVE UP with {drain['left']:,} still queued" if drain["left"] else "")))
    return rows


def _write_csv(seconds: Sequence[Second], phases: Sequence[Phase], path: pathlib.Path) -> None:
    lines = ["unix_second,phase,requests,errors,p50_ms,p99_ms,max_ms"]
    for second in seconds:
        phase = next((p.name for p in phases if _in_phase(second, p)), "")
        lines.append(f"{second.at},{phase},{len(second.latencies)},{second.errors},"
                     f"{timeline.percentile(second.latencies, 0.5):.3f},"
                     f"{timeline.percentile(second.latencies, 0.99):.3f},{second.latencies[-1]:.3f}")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    # ``python -m benchmarks.retention_load JOB OPTIONS_JSON``: one job, its summary on stdout.
    name, job_options = sys.argv[1], json.loads(sys.argv[2])
    summary = asyncio.run({"retention": _retention, "effectiveness": _effectiveness, "summaries": _summaries,
                           "outbox drain": _outbox}[name](job_options))
    print(json.dumps(summary, default=str))
