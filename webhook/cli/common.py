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
def stores(config: Settings, *, redis: bool = True, exclusive: bool = False,
           stop_timeout: float = 30.0) -> Iterator[Settings]:
    """The stores ``config`` lacks a DSN/URL for: embedded ones under the data dir. Yields
    ``config`` completed with their addresses (settings are frozen: use the yielded one).

    A command on a data dir whose stores another process owns (a serving gate) connects to
    them and leaves them running; otherwise it starts them and stops them on exit.
    ``exclusive`` (``serve``): this process must own them. A store that cannot be started or
    reached is reported in one line (exit 1), not as a traceback.
    """
    from webhook.server.runtime import EmbeddedStores
    from webhook.store.embedded import EmbeddedServerError

    try:
        embedded = EmbeddedStores.start(config, redis=redis, exclusive=exclusive)
    except EmbeddedServerError as exc:
        err_console.print(f"[red]embedded stores: {exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    try:
        yield embedded.completed(config)
    finally:
        embedded.stop(timeout=stop_timeout)
