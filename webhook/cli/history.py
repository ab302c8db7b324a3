"""``safety-gate history NAMESPACE/KIND/NAME``: a target's timeline as a table."""

from __future__ import annotations

import asyncio
import datetime

from rich.table import Table

from webhook.actions.model import ActionEvent, TargetRef
from webhook.admission.extract import canonical_kind
from webhook.cli import common
from webhook.policy.durations import DurationError, parse_duration
from webhook.settings import Settings
from webhook.store.confirmation import ActionStatus
from webhook.store.postgres import PostgresStore, create_pool


def run_history(settings: Settings, *, target: str, since: str) -> None:
    ref = TargetRef.parse(target)
    if ref is None:
        common.err_console.print(f"[red]expected NAMESPACE/KIND/NAME, got {target!r}[/red]")
        raise SystemExit(2)
    ref = TargetRef(namespace=ref.namespace, kind=canonical_kind(ref.kind), name=ref.name)
    try:
        window = parse_duration(since)
    except DurationError as exc:
        common.err_console.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None
    with common.stores(settings, redis=False) as settings:
        events = asyncio.run(_load(settings, ref, window))
    table = Table(title=f"{ref.display}: {len(events)} action(s) in the last {since}")
    for column in ("time", "action", "change", "actor", "status", "alert", "effectiveness"):
        table.add_column(column)
    for event, status in events:
        table.add_row(event.at.strftime("%Y-%m-%d %H:%M:%S"), event.action_type, event.summary(), event.actor,
                      status.value, event.alert_name or "",
                      "" if event.effectiveness is None else f"{event.effectiveness:.2f}")
    common.console.print(table)


async def _load(settings: Settings, ref: TargetRef,
                window: datetime.timedelta) -> list[tuple[ActionEvent, ActionStatus]]:
    assert settings.postgres_dsn
    pool = await create_pool(settings.postgres_dsn, max_size=2)
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        # Not-applied actions are shown too (they never count): the table is what the gate was asked.
        return await PostgresStore(pool, cluster_id=settings.cluster_id).timeline(ref, since=now - window)
    finally:
        await pool.close()
