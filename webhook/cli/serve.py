"""``safety-gate serve``: uvicorn over TLS, plus plain-HTTP metrics when asked.

TLS comes from a :class:`~webhook.tls.reloading.ReloadingServerContext` rather than uvicorn's
``ssl_certfile`` (read once at start): renewed files — written by the self-managed rotation
(``SAFETY_GATE_CERT_SECRET``), by ``ensure_serving_pair``, or by the kubelet when cert-manager
renews a mounted Secret — are used by new handshakes without a restart, and open keep-alive
connections are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import uvicorn

from webhook.cli import common
from webhook.policy.loader import PolicyError
from webhook.server import logs
from webhook.server.app import create_app, create_metrics_app
from webhook.server.client_auth import RequireClientCertificate, with_peer_certificate
from webhook.server.runtime import Runtime, load_policies
from webhook.services import GuardedTask
from webhook.settings import Settings
from webhook.tls.reloading import ReloadingServerContext

logger = logging.getLogger(__name__)

# Idle keep-alive connections are closed by the client, not by us: Go's HTTP client (the API
# server's) keeps them 90s, and a server that closes first races the client's next request on
# that connection ("use of closed network connection"). uvicorn's default is 5s.
KEEP_ALIVE_SECONDS = 120

# SIGTERM ends the process within SHUTDOWN_BOUND_SECONDS, below the pod's grace period (the chart's
# terminationGracePeriodSeconds, 30 by default) so the kubelet never has to SIGKILL a gate mid-write:
# in-flight reviews are answered within GRACEFUL_SECONDS, the runtime stops in three bounded steps
# (webhook.server.runtime.STOP_STEP_SECONDS each), embedded stores within EMBEDDED_STOP_SECONDS. A
# watchdog exits at the bound whatever still runs.
SHUTDOWN_BOUND_SECONDS = 25.0
GRACEFUL_SECONDS = 5
EMBEDDED_STOP_SECONDS = 8.0


def run_server(settings: Settings) -> None:
    logs.configure(settings.server.log_level, log_format=settings.server.log_format)
    try:
        policies = load_policies(settings)
    except PolicyError as exc:
        common.err_console.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None
    settings = serving_settings(settings)
    shutdown = Shutdown(bound=SHUTDOWN_BOUND_SECONDS)
    try:
        with common.stores(settings, exclusive=True, stop_timeout=EMBEDDED_STOP_SECONDS) as settings:
            if settings.server.workers > 1:  # the parent of the pod's workers (webhook.cli.workers)
                from webhook.cli.workers import Pod

                Pod(settings, shutdown=shutdown).run()
            else:
                runtime = Runtime(settings, policies=policies)
                run_event_loop(_serve(settings, runtime, shutdown=shutdown))
    finally:
        shutdown.done()
    if shutdown.signal is not None:
        logger.info("stopped after %s", shutdown.signal.name)


def serving_settings(settings: Settings) -> Settings:
    """``settings`` with the serving pair it will use: the given files, the cluster's pair from the
    certificate Secret (self-managed), or a local self-signed pair under the data dir."""
    certificates, server = settings.certificates, settings.server
    if certificates.self_managed and (server.tls_cert is not None or server.tls_key is not None):
        logger.warning("--tls-cert/--tls-key given: not managing certificates in Secret %s", certificates.secret)
        settings = settings.with_values(cert_secret=None)
    if not settings.server.has_tls_files and settings.certificates.self_managed:
        from webhook.kube.certificates import bootstrap_serving_files

        pair = bootstrap_serving_files(settings)
        if pair is not None:
            settings = settings.with_values(tls_cert=pair[0], tls_key=pair[1])
    if not settings.server.has_tls_files:
        from webhook.tls.selfsigned import ensure_serving_pair

        _, cert, key = ensure_serving_pair(settings.stores.data_dir / "tls")
        settings = settings.with_values(tls_cert=cert, tls_key=key)
    return settings


class Shutdown:
    """SIGTERM/SIGINT: stop the servers gracefully, and exit at ``bound`` seconds whatever still runs.

    uvicorn's own handlers are not used: each ``uvicorn.Server`` installs handlers for itself only
    (a second server — the metrics one — replaces the first's), and re-raises the signal after its
    shutdown, which kills the process before the embedded stores are stopped and the exit logged.
    A second SIGINT forces the servers to drop their in-flight requests (as uvicorn's does).
    """

    def __init__(self, *, bound: float) -> None:
        self.bound = bound
        self.signal: signal.Signals | None = None
        self.servers: list[uvicorn.Server] = []
        self._watchdog: threading.Timer | None = None

    def request(self, sig: signal.Signals) -> None:
        if self.signal is None:
            self.signal = sig
            logger.info("%s: answering the reviews in flight, then stopping (at most %.0fs)", sig.name, self.bound)
            self._watchdog = threading.Timer(self.bound, self._expired)
            self._watchdog.daemon = True
            self._watchdog.start()
        elif sig == signal.SIGINT:
            for server in self.servers:
                server.force_exit = True
        for server in self.servers:
            server.should_exit = True

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, self.request, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def done(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _expired(self) -> None:
        logger.error("shutdown took longer than %.0fs; exiting now", self.bound)
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        sys.stderr.flush()
        os._exit(1)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to :class:`Shutdown`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
        if self.tls.client_ca_file is not None:  # /validate checks the API server's client certificate
            self.http_protocol_class = with_peer_certificate(self.http_protocol_class)


def _certificate_watch(tls: ReloadingServerContext, *, every: float) -> GuardedTask:
    """Notice renewed files even while no handshake happens (handshakes check on their own too)."""

    async def check() -> None:
        tls.maybe_reload(force=True)  # a bad file is logged by the task; the old pair stays in use

    return GuardedTask(name="tls-reload", step=check, interval=every)


async def _serve_then_stop_the_others(server: uvicorn.Server, servers: list[uvicorn.Server], *,
                                      sockets: list[socket.socket] | None) -> None:
    """When one server ends (its start-up failed, say), the others end too: a metrics port alone
    must not keep a process that no longer admits anything alive."""
    try:
        await server.serve(sockets=sockets)
    finally:
        for other in servers:
            other.should_exit = True


async def _serve(settings: Settings, runtime: Runtime, *, shutdown: Shutdown,
                 listening: ListeningSockets | None = None) -> None:
    """Serve until ``shutdown``; ``listening``: sockets a parent bound for this worker (else uvicorn
    binds host and port itself)."""
    app: Any = create_app(settings, runtime=runtime)
    assert settings.server.tls_cert is not None and settings.server.tls_key is not None
    if settings.validate_client_ca is not None:
        app = RequireClientCertificate(app)
        logger.info("/validate requires a client certificate signed by %s", settings.validate_client_ca)
    tls = ReloadingServerContext(cert_file=settings.server.tls_cert, key_file=settings.server.tls_key,
                                 client_ca_file=settings.validate_client_ca, client_verify=ssl.CERT_OPTIONAL)
    config = ReloadingTLSConfig(
        app, tls=tls, host=settings.server.host, port=settings.server.port, ssl_certfile=str(settings.server.tls_cert),
        ssl_keyfile=str(settings.server.tls_key), log_config=None, access_log=False, lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS, timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    servers: list[uvicorn.Server] = [_Server(config)]
    sockets: list[list[socket.socket] | None] = [[listening.main] if listening else None]
    if settings.server.metrics_port:
        metrics_config = uvicorn.Config(create_metrics_app(), host=settings.server.host, port=settings.server.metrics_port,
                                        log_config=None, access_log=False, lifespan="off")
        servers.append(_Server(metrics_config))
        sockets.append([listening.metrics] if listening and listening.metrics else None)
    shutdown.servers = servers
    logger.info("serving on https://%s:%s", settings.server.host, settings.server.port)
    watches = [_certificate_watch(tls, every=2.0)]
    if listening is not None:
        watches.append(_parent_watch(listening.parent_pid, shutdown=shutdown))
    for watch in watches:
        watch.start()
    try:
        with shutdown.handling_signals():
            await asyncio.gather(*(_serve_then_stop_the_others(server, servers, sockets=bound)
                                   for server, bound in zip(servers, sockets, strict=True)))
    finally:
        for watch in watches:
            await watch.stop()


@dataclasses.dataclass(frozen=True)
class ListeningSockets:
    """What a worker of ``serve --workers`` serves on: sockets its parent bound (webhook.cli.workers)."""

    main: socket.socket
    metrics: socket.socket | None
    parent_pid: int


def _parent_watch(parent_pid: int, *, shutdown: Shutdown, every: float = 1.0) -> GuardedTask:
    """A worker whose parent is gone (killed outright) stops like on SIGTERM: nothing else would
    stop it, and without the parent its embedded stores and its restarts are gone too."""

    async def check() -> None:
        if os.getppid() != parent_pid:
            shutdown.request(signal.SIGTERM)

    return GuardedTask(name="parent-watch", step=check, interval=every)
