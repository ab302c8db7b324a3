"""``safety-gate mcp``: the MCP server, on the same stores and policies as ``serve``.

Over stdio, stdout belongs to the protocol: everything else (logs, embedded store output) goes to
stderr or the data dir, and nothing here prints to stdout.
"""

from __future__ import annotations

import asyncio

from webhook.cli import engine
from webhook.server import logs
from webhook.settings import Settings


def run_mcp(settings: Settings, *, transport: str, host: str, port: int) -> None:
    from webhook.mcp.server import serve

    logs.configure(settings.server.log_level, log_format=settings.server.log_format)
    with engine.runtime_on_stores(settings) as runtime:
        asyncio.run(serve(runtime, transport=transport, host=host, port=port,  # type: ignore[arg-type]
                          log_level=settings.server.log_level))
