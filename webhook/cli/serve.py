"""``safety-gate serve``: uvicorn over TLS, plus plain-HTTP metrics when asked."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from webhook.cli import common
from webhook.policy.loader import PolicyError
from webhook.server import logs
from webhook.server.app import create_app, create_metrics_app
from webhook.server.runtime import Runtime
from webhook.settings import Settings

logger = logging.getLogger(__name__)


def run_server(settings: Settings) -> None:
    logs.configure(settings.log_level)
    try:
        runtime = Runtime(settings)
    except PolicyError as exc:
        common.err_console.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None
    if settings.tls_cert is None or settings.tls_key is None:
        from webhook.tls.selfsigned import ensure_serving_pair

        _, settings.tls_cert, settings.tls_key = ensure_serving_pair(settings.data_dir / "tls")
    with common.stores(settings):
        asyncio.run(_serve(settings, runtime))


async def _serve(settings: Settings, runtime: Runtime) -> None:
    app = create_app(settings, runtime=runtime)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key), log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=5,
    )
    servers = [uvicorn.Server(config)]
    if settings.metrics_port:
        metrics_config = uvicorn.Config(create_metrics_app(), host=settings.host, port=settings.metrics_port,
                                        log_config=None, access_log=False, lifespan="off")
        servers.append(uvicorn.Server(metrics_config))
    logger.info("serving on https://%s:%s", settings.host, settings.port)
    await asyncio.gather(*(server.serve() for server in servers))
