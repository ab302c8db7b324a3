"""``safety-gate retention run``: one retention run now, with a summary of what went.

The same runner as the server's periodic job, under the same leader lock: running it while a
replica is mid-run reports "skipped" instead of racing it.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Annotated, Optional

import typer
from rich.table import Table

from webhook.cli import common, options
from webhook.retention.policy import Strategy
from webhook.retention.runner import RetentionReport, RetentionRunner
from webhook.settings import Settings
from webhook.store.migrate import migrate
from webhook.store.postgres import create_pool

app = typer.Typer(help="Action-history retention (DESIGN §7).", no_args_is_help=True)

Opt = typer.Option


@app.command("run")
def run(
    postgres_dsn: options.PostgresDsn = None,
    data_dir: options.DataDir = None,
    cluster_id: options.ClusterId = None,
    now: Annotated[Optional[str], Opt(help="Pretend it is this RFC 3339 time (default: now).")] = None,
    strategy: Annotated[Optional[Strategy], Opt(help="Use this compaction strategy for every target "
                                                     "instead of each target's own.")] = None,
    max_age_days: Annotated[Optional[int], Opt(help="Default max age for untargeted actions and "
                                                     "partitions (days).", min=1)] = None,
) -> None:
    """Delete what the retention policies say, drop old monthly partitions, create the next ones."""
    moment = _parse_now(now)
    flags = {"postgres_dsn": postgres_dsn, "data_dir": data_dir, "cluster_id": cluster_id,
             "retention_max_age_days": max_age_days}
    settings = common.settings(**{key: value for key, value in flags.items() if value is not None})
    with common.stores(settings, redis=False) as settings:
        report = asyncio.run(_run(settings, now=moment, strategy=strategy))
    print_report(report)
    if report.result == "failure":
        raise typer.Exit(1)


def _parse_now(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        common.err_console.print(f"[red]--now: expected an RFC 3339 time like 2026-11-21T21:00:00Z, got {text!r}[/red]")
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


async def _run(settings: Settings, *, now: datetime.datetime | None, strategy: Strategy | None) -> RetentionReport:
    assert settings.stores.postgres_dsn
    await migrate(settings.stores.postgres_dsn)
    pool = await create_pool(settings.stores.postgres_dsn, max_size=3, command_timeout=None)  # a batch job
    try:
        runner = RetentionRunner(pool, cluster_id=settings.stores.cluster_id,
                                 default_max_age=settings.retention.max_age)
        return await runner.run(now=now, strategy=strategy)
    finally:
        await pool.close()


def print_report(report: RetentionReport) -> None:
    console = common.console
    if report.result == "skipped":
        console.print("retention: another run holds the leader lock; nothing done")
        return
    colour = "green" if report.result == "success" else "red"
    console.print(f"retention run #{report.operation_id} ({report.strategy}) at {report.now.isoformat()}: "
                  f"[{colour}]{report.result}[/{colour}]")
    if report.error:
        console.print(f"[red]{report.error}[/red]")
    table = Table(show_header=False, box=None)
    table.add_row("targets examined", str(report.targets_examined))
    table.add_row("actions removed", str(report.actions_removed))
    table.add_row("  of which past max age", str(report.aged_out))
    table.add_row("  of which untargeted", str(report.untargeted_removed))
    for namespace, count in sorted(report.removed_by_namespace.items()):
        table.add_row(f"  namespace {namespace}", str(count))
    for name, count in sorted(report.removed_by_strategy.items()):
        table.add_row(f"  strategy {name}", str(count))
    table.add_row("pattern examples marked", str(report.pattern_examples_marked))
    table.add_row("partitions dropped", ", ".join(report.partitions_dropped) or "-")
    table.add_row("partitions created", ", ".join(report.partitions_created) or "-")
    if report.partitions_kept_busy:
        table.add_row("partitions busy (next run)", ", ".join(report.partitions_kept_busy))
    console.print(table)
