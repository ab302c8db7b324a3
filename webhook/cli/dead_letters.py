"""``safety-gate dead-letters``: the decisions PostgreSQL refused, and why.

A bundle the database refuses (a replica count beyond ``integer``, a NUL byte, a non-finite
quantity) is never retried unchanged: a cleaned copy is recorded in its place when one can be
(``sanitized``), and the original is kept whole in ``dead_letters`` with the reason. This lists
them so an operator can see what was changed or held, and why.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Annotated, Any

import asyncpg
import typer
from rich.table import Table

from webhook.cli import common, engine, options
from webhook.settings import Settings
from webhook.store.postgres import PostgresStore, create_pool

Opt = typer.Option


def dead_letters(
    limit: Annotated[int, Opt(min=1, max=10_000, help="At most this many, newest first.")] = 100,
    json_output: Annotated[bool, Opt("--json", help="Print the rows, payload included, as JSON.")] = False,
    postgres_dsn: options.PostgresDsn = None,
    data_dir: options.DataDir = None,
    cluster_id: options.ClusterId = None,
) -> None:
    """List decisions PostgreSQL refused: kept as dead letters with the reason (sanitized copy or held)."""
    given = {key: value for key, value in {"postgres_dsn": postgres_dsn, "data_dir": data_dir,
                                           "cluster_id": cluster_id}.items() if value is not None}
    settings = common.settings(**given)
    with common.stores(settings, redis=False) as settings:
        rows = asyncio.run(_fetch(settings, limit=limit))
    if json_output:
        engine.print_json([_jsonable(row) for row in rows])
        return
    if not rows:
        common.err_console.print("no dead letters")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("KEPT", "REQUEST UID", "RESOLUTION", "SQLSTATE", "REASON"):
        table.add_column(column, no_wrap=column != "REASON")
    for row in rows:
        table.add_row(_iso(row["created_at"]), row["request_uid"], row["resolution"], row["sqlstate"] or "",
                      row["reason"])
    common.console.print(table)


async def _fetch(settings: Settings, *, limit: int) -> list[dict[str, Any]]:
    assert settings.stores.postgres_dsn
    pool = await create_pool(settings.stores.postgres_dsn, max_size=2)
    try:
        return await PostgresStore(pool, cluster_id=settings.stores.cluster_id).dead_letters(limit=limit)
    except asyncpg.UndefinedTableError:
        common.err_console.print("[red]no dead_letters table: run safety-gate migrate[/red]")
        raise typer.Exit(1) from None
    except (OSError, asyncpg.PostgresError) as exc:
        common.err_console.print(f"[red]cannot read dead letters: {exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        await pool.close()


def _iso(value: datetime.datetime | None) -> str:
    return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z") if value else ""


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "request_uid": row["request_uid"], "resolution": row["resolution"],
        "sqlstate": row["sqlstate"], "reason": row["reason"], "decided_at": _iso(row["decided_at"]) or None,
        "kept_at": _iso(row["created_at"]),
        "payload": row["payload"],  # the refused bundle as JSON text (NaN/Infinity kept as such)
    }
