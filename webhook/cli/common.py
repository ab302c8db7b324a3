"""What every command shares: settings from flags and environment, and store start-up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pydantic
import typer
from rich.console import Console

from webhook.settings import Settings

console = Console()
err_console = Console(stderr=True)


def settings(**flags: Any) -> Settings:
    try:
        return Settings(**flags)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err_console.print(f"[red]invalid settings:[/red] {problems}")
        raise typer.Exit(2) from None


@contextlib.contextmanager
def stores(config: Settings, *, redis: bool = True) -> Iterator[Any]:
    """Embedded PostgreSQL/Redis when no DSN/URL is configured; nothing to do otherwise."""
    from webhook.server.runtime import EmbeddedStores

    embedded = EmbeddedStores.start(config, redis=redis)
    try:
        yield embedded
    finally:
        embedded.stop()
