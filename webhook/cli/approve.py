"""``safety-gate approve NAMESPACE/ALERT``: with a cluster, set the alert's ``spec.approval``
(Kubernetes RBAC decides who may, and the approval records the caller's Kubernetes identity);
without one, record the approval in PostgreSQL under ``--approved-by`` or the OS user."""

from __future__ import annotations

import asyncio
import datetime
import getpass

from rich.markup import escape

from webhook.cli import common
from webhook.settings import Settings
from webhook.store.postgres import PostgresStore, create_pool


def run_approve(settings: Settings, *, alert: str, reason: str, approved_by: str | None) -> None:
    if alert.count("/") != 1 or not all(alert.split("/")):
        common.err_console.print(f"[red]expected NAMESPACE/ALERT, got {alert!r}[/red]")
        raise SystemExit(2)
    now = datetime.datetime.now(datetime.timezone.utc)
    if settings.kube.kubeconfig is not None or settings.kube.in_cluster:
        from webhook.kube.approvals import ApprovalError, approve_in_cluster

        try:
            _, who = approve_in_cluster(settings, alert=alert, approved_by=approved_by, reason=reason, now=now)
        except ApprovalError as exc:
            # One line, not a traceback: typer handles only its own (vendored) click's exceptions.
            common.err_console.print(f"[red]{escape(exc.message)}[/red]", highlight=False)
            raise SystemExit(exc.exit_code) from None
        common.console.print(f"approved {alert} in the cluster as {who} (spec.approval set)")
        return
    who = approved_by or getpass.getuser()
    with common.stores(settings, redis=False) as settings:
        found = asyncio.run(_approve_in_postgres(settings, alert=alert, who=who, reason=reason, now=now))
    if not found:
        common.err_console.print(f"[red]no detection named {alert}[/red]")
        raise SystemExit(1)
    common.console.print(f"approved {alert}: the next matching action within 1h is allowed once")


async def _approve_in_postgres(settings: Settings, *, alert: str, who: str, reason: str,
                               now: datetime.datetime) -> bool:
    assert settings.stores.postgres_dsn
    pool = await create_pool(settings.stores.postgres_dsn, max_size=2)
    try:
        return await PostgresStore(pool, cluster_id=settings.stores.cluster_id).approve(
            alert, approved_by=who, reason=reason, at=now)
    finally:
        await pool.close()
