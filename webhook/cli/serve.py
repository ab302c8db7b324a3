"""``safety-gate serve``: uvicorn over TLS, plus plain-HTTP metrics when asked.

TLS comes from a :class:`~webhook.tls.reloading.ReloadingServerContext` rather than uvicorn's
``ssl_certfile`` (read once at start): renewed files — written by the self-managed rotation
(``SAFETY_GATE_CERT_SECRET``), by ``ensure_serving_pair``, or by the kubelet when cert-manager
renews a mounted Secret — are used by new handshakes without a restart, and open keep-alive
connections are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import uvicorn

from webhook.cli import common
from webhook.policy.loader import PolicyError
from webhook.server import logs
from webhook.server.app import create_app, create_metrics_app
from webhook.server.runtime import Runtime
from webhook.settings import Settings
from webhook.tls.reloading import ReloadingServerContext

logger = logging.getLogger(__name__)

# Idle keep-alive connections are closed by the client, not by us: Go's HTTP client (the API
# server's) keeps them 90s, and a server that closes first races the client's next request on
# that connection ("use of closed network connection"). uvicorn's default is 5s.
KEEP_ALIVE_SECONDS = 120


def run_server(settings: Settings) -> None:
    logs.configure(settings.log_level)
    try:
        runtime = Runtime(settings)
    except PolicyError as exc:
        common.err_console.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None
    if settings.cert_secret and (settings.tls_cert is not None or settings.tls_key is not None):
        logger.warning("--tls-cert/--tls-key given: not managing certificates in Secret %s", settings.cert_secret)
        settings.cert_secret = None
    if (settings.tls_cert is None or settings.tls_key is None) and settings.cert_secret:
        from webhook.kube.certificates import bootstrap_serving_files

        pair = bootstrap_serving_files(settings)
        if pair is not None:
            settings.tls_cert, settings.tls_key = pair
    if settings.tls_cert is None or settings.tls_key is None:
        from webhook.tls.selfsigned import ensure_serving_pair

        _, settings.tls_cert, settings.tls_key = ensure_serving_pair(settings.data_dir / "tls")
    with common.stores(settings):
        run_event_loop(_serve(settings, runtime))


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (a dependency everywhere but Windows), else asyncio's loop.

    The gate spends most of its time in the loop itself — TLS records, HTTP parsing, the
    PostgreSQL and Redis protocols — and uvloop does that work in C.
    """
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


class ReloadingTLSConfig(uvicorn.Config):
    """A uvicorn config whose listening socket uses our reloading context.

    uvicorn builds its ``SSLContext`` in ``load()`` (from ``ssl_certfile``, once); replacing
    ``self.ssl`` right after is the one hook every supported uvicorn version has
    (``ssl_context_factory`` only exists in recent ones).
    """

    def __init__(self, app: object, *, tls: ReloadingServerContext, **kwargs: object) -> None:
        super().__init__(app, **kwargs)  # type: ignore[arg-type]
        self.tls = tls

    def load(self) -> None:
        super().load()
        self.ssl = self.tls.context


async def _watch_certificate(tls: ReloadingServerContext, *, every: float) -> None:
    """Notice renewed files even while no handshake happens (handshakes check on their own too)."""
    while True:
        await asyncio.sleep(every)
        try:
            tls.maybe_reload(force=True)
        except Exception:  # noqa: BLE001 - a bad file must not end the watch; the old pair stays in use
            logger.exception("checking the TLS certificate files failed")


async def _serve(settings: Settings, runtime: Runtime) -> None:
    app = create_app(settings, runtime=runtime)
    assert settings.tls_cert is not None and settings.tls_key is not None
    tls = ReloadingServerContext(cert_file=settings.tls_cert, key_file=settings.tls_key)
    config = ReloadingTLSConfig(
        app, tls=tls, host=settings.host, port=settings.port, ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key), log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=5, timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    servers = [uvicorn.Server(config)]
    if settings.metrics_port:
        metrics_config = uvicorn.Config(create_metrics_app(), host=settings.host, port=settings.metrics_port,
                                        log_config=None, access_log=False, lifespan="off")
        servers.append(uvicorn.Server(metrics_config))
    logger.info("serving on https://%s:%s", settings.host, settings.port)
    watch = asyncio.create_task(_watch_certificate(tls, every=2.0), name="tls-reload")
    try:
        await asyncio.gather(*(server.serve() for server in servers))
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
