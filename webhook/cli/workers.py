"""``safety-gate serve --workers N`` (N ≥ 2): one parent per pod and N serving worker processes.

One Python process decides on one core; a pod with two cores needs two processes to use them.
The parent owns what there is one of per pod, and workers own what there is one of per gate:

* the parent starts the embedded stores (when no DSN/URL is given) and bootstraps the TLS serving
  files once, before any worker exists (``run_server`` does both, as for one process), and hands
  every worker the completed settings — the stores' addresses, the files — over its stdin;
* the parent binds the listening sockets: one per worker on the same port with ``SO_REUSEPORT``,
  so the kernel spreads new connections over the workers by their addresses (one shared socket
  would let whichever worker wakes first take a whole burst of keep-alive connections). It keeps
  each worker's socket open across that worker's restart: connections queued meanwhile wait for
  the replacement instead of being reset. The plain-HTTP metrics port is one socket all share;
* each worker is a fresh interpreter (``python -m webhook.cli.workers``, never a fork of a process
  with threads and an event loop) and a full gate like a replica (``webhook.server.runtime.Worker``);
* the parent restarts a worker that dies, with a backoff, and on SIGTERM/SIGINT forwards the signal
  and waits for the workers within the shutdown bound, then stops the embedded stores;
* metrics: the parent points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory under the data dir,
  so any worker's /metrics reports the pod's totals (webhook.metrics).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import IO

from webhook import metrics
from webhook.cli.serve import (
    EMBEDDED_STOP_SECONDS,
    SHUTDOWN_BOUND_SECONDS,
    ListeningSockets,
    Shutdown,
    _serve,
    run_event_loop,
)
from webhook.policy.loader import PolicyError
from webhook.server import logs
from webhook.server.runtime import Runtime, Worker, load_policies
from webhook.settings import Settings

logger = logging.getLogger(__name__)

#: A worker's own shutdown bound: the pod's, less the embedded stores' stop that follows it in the
#: parent and a second of margin for the parent to reap. Its own steps (graceful answers, the
#: runtime's bounded stops) fit in it, as they fit in one process's bound.
WORKER_SHUTDOWN_SECONDS = SHUTDOWN_BOUND_SECONDS - EMBEDDED_STOP_SECONDS - 2.0
#: Restart backoff: the first restart comes soon (queued connections are waiting for it), each
#: quick death doubles the pause up to the maximum; a worker that lived STABLE_SECONDS resets it.
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
STABLE_SECONDS = 60.0
#: How often the parent looks at its workers and its signals.
POLL_SECONDS = 0.2
#: uvicorn's default listen backlog.
BACKLOG = 2048


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, sent by its parent over the worker's stdin (pickled: the two
    are the same program, and settings carry secrets that should not sit in the environment)."""

    index: int
    count: int
    settings: Settings
    main_fd: int
    metrics_fd: int | None
    parent_pid: int


@dataclasses.dataclass
class _Slot:
    index: int
    listening: socket.socket
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF_SECONDS
    restart_at: float | None = None


def bind(host: str, port: int, *, reuse_port: bool, listen: bool = True) -> socket.socket:
    """A listening TCP socket on ``host:port`` that the workers inherit (close-on-exec is lifted
    only for the child it is passed to)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def free_port(host: str, port: int) -> int:
    """``port`` (0: one the kernel picks) if nothing listens there, else ``OSError``.

    ``SO_REUSEPORT`` alone would not say so: a socket of another process of the same user with
    that option (a second gate on the same port) would silently share the connections. A bind
    without it fails on any listener; the probe never listens, so closing it frees the port at once.
    """
    with bind(host, port, reuse_port=False, listen=False) as probe:
        return int(probe.getsockname()[1])


def fresh_metrics_dir(settings: Settings) -> str:
    """The pod's metric files: emptied at start, so no earlier run's counters are added in."""
    directory = (settings.stores.data_dir / "metrics").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory)


class Pod:
    """The parent process: binds, spawns, restarts and stops the workers (see the module docs)."""

    def __init__(self, settings: Settings, *, shutdown: Shutdown) -> None:
        self.settings = settings
        self.count = settings.server.workers
        self.shutdown = shutdown
        self._signals: list[signal.Signals] = []
        self.metrics_dir = ""
        self.metrics_socket: socket.socket | None = None
        self.slots: list[_Slot] = []

    def run(self) -> None:
        server = self.settings.server
        try:
            port = free_port(server.host, server.port)
            for index in range(self.count):  # same port, each its own accept queue
                self.slots.append(_Slot(index=index, listening=bind(server.host, port, reuse_port=True)))
            if server.metrics_port:
                self.metrics_socket = bind(server.host, server.metrics_port, reuse_port=False)
        except OSError as exc:  # in use, not an address of this host: one line, as uvicorn says it
            logger.error("cannot listen on %s: %s", server.host, exc)
            self._close_sockets()
            raise SystemExit(1) from None
        self.metrics_dir = fresh_metrics_dir(self.settings)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        logger.info("serving on https://%s:%s with %d workers", server.host, port, self.count)
        try:
            for slot in self.slots:
                self._spawn(slot)
            self._supervise()
            self._stop_workers()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close_sockets()

    def _close_sockets(self) -> None:
        for slot in self.slots:
            slot.listening.close()
        if self.metrics_socket is not None:
            self.metrics_socket.close()

    def _on_signal(self, signum: int, frame: object) -> None:
        # Only note it (no lock, no log: the handler may interrupt either): the main loop logs,
        # forwards it and starts the watchdog within POLL_SECONDS.
        self._signals.append(signal.Signals(signum))

    def _supervise(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            if self._take_signals():
                return
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is not None and slot.process.poll() is not None:
                    self._buried(slot, now=now)
                if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                    self._spawn(slot)

    def _take_signals(self) -> bool:
        """Forward what arrived (a second SIGINT forces the workers, as in one process)."""
        arrived = []
        while self._signals:
            arrived.append(self._signals.pop(0))
        for sig in arrived:
            self.shutdown.request(sig)
            self._send(sig)
        return self.shutdown.signal is not None

    def _send(self, sig: signal.Signals) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                try:
                    slot.process.send_signal(sig)
                except ProcessLookupError:
                    pass

    def _buried(self, slot: _Slot, *, now: float) -> None:
        assert slot.process is not None
        pid, code = slot.process.pid, slot.process.returncode
        lived = now - slot.started
        self._forget(pid)
        if lived >= STABLE_SECONDS:
            slot.backoff = FIRST_BACKOFF_SECONDS
        logger.error("worker %d (pid %d) exited with %s after %.1fs; restarting it in %.1fs",
                     slot.index, pid, _describe(code), lived, slot.backoff)
        slot.process = None
        slot.restart_at = now + slot.backoff
        slot.backoff = min(slot.backoff * 2, MAX_BACKOFF_SECONDS)

    def _forget(self, pid: int) -> None:
        """Drop a dead worker's live gauges (its counters stay: what it counted happened)."""
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, self.metrics_dir)

    def _spawn(self, slot: _Slot) -> None:
        fds = [slot.listening.fileno()] + ([self.metrics_socket.fileno()] if self.metrics_socket else [])
        spec = WorkerSpec(index=slot.index, count=self.count, settings=self.settings, main_fd=fds[0],
                          metrics_fd=fds[1] if len(fds) > 1 else None, parent_pid=os.getpid())
        env = {**os.environ, metrics.MULTIPROC_DIR_VARIABLE: self.metrics_dir}
        # A session of its own: a Ctrl-C on the terminal reaches the parent only, which forwards it
        # once (a worker receiving it twice, from both, would take the second as "force").
        process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, pass_fds=fds, env=env,
                                   start_new_session=True)
        stdin: IO[bytes] | None = process.stdin
        assert stdin is not None
        try:
            stdin.write(pickle.dumps(spec))
            stdin.close()
        except BrokenPipeError:  # it died at once: the next poll buries and restarts it
            pass
        slot.process, slot.started, slot.restart_at = process, time.monotonic(), None
        logger.info("worker %d started (pid %d)", slot.index, process.pid)

    def _stop_workers(self) -> None:
        """Wait for the workers to end on the signal already forwarded; kill what outlives its bound."""
        deadline = time.monotonic() + WORKER_SHUTDOWN_SECONDS + 1.0
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                self._take_signals()  # a second SIGINT still reaches them
            if process.poll() is None:
                logger.error("worker %d (pid %d) still running at the bound; killing it", slot.index, process.pid)
                process.kill()
                process.wait()
            self._forget(process.pid)
            logger.info("worker %d (pid %d) stopped (%s)", slot.index, process.pid, _describe(process.returncode))


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        return signal.Signals(-code).name
    return f"code {code}"


def main() -> None:
    """A worker: read the spec from stdin, serve on the inherited sockets until told to stop."""
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)
    settings = spec.settings
    logs.configure(settings.server.log_level, log_format=settings.server.log_format)
    try:
        policies = load_policies(settings)
    except PolicyError as exc:  # the parent checked the file; it changed since
        logger.error("worker %d: %s", spec.index, exc)
        raise SystemExit(2) from None
    listening = ListeningSockets(
        main=socket.socket(fileno=spec.main_fd),
        metrics=socket.socket(fileno=spec.metrics_fd) if spec.metrics_fd is not None else None,
        parent_pid=spec.parent_pid)
    shutdown = Shutdown(bound=WORKER_SHUTDOWN_SECONDS)
    runtime = Runtime(settings, policies=policies, worker=Worker(index=spec.index, count=spec.count))
    try:
        run_event_loop(_serve(settings, runtime, shutdown=shutdown, listening=listening))
    finally:
        shutdown.done()
    if shutdown.signal is not None:
        logger.info("worker %d stopped after %s", spec.index, shutdown.signal.name)


if __name__ == "__main__":
    from webhook.cli import workers  # the module by its name: its logger, the spec's class

    workers.main()
