"""``serve``'s shutdown: one signal stops every server gracefully, a second SIGINT forces them, and a
shutdown that overruns its bound ends the process anyway (the watchdog), before the kubelet's SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import uvicorn

from webhook.cli.serve import SHUTDOWN_BOUND_SECONDS, Shutdown, _Server


def servers() -> list[uvicorn.Server]:
    return [_Server(uvicorn.Config(app=None)), _Server(uvicorn.Config(app=None))]


def test_the_first_signal_stops_every_server_gracefully_and_a_second_sigint_forces_them() -> None:
    shutdown = Shutdown(bound=SHUTDOWN_BOUND_SECONDS)
    shutdown.servers = servers()
    try:
        shutdown.request(signal.SIGTERM)
        assert all(s.should_exit and not s.force_exit for s in shutdown.servers)
        assert shutdown.signal is signal.SIGTERM
        shutdown.request(signal.SIGTERM)  # repeated SIGTERMs (kubelet, then an operator) stay graceful
        assert not any(s.force_exit for s in shutdown.servers)
        shutdown.request(signal.SIGINT)
        assert all(s.force_exit for s in shutdown.servers)
    finally:
        shutdown.done()


def test_uvicorn_leaves_the_signals_to_us() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with _Server(uvicorn.Config(app=None)).capture_signals():
        assert signal.getsignal(signal.SIGTERM) is before


def test_a_shutdown_that_overruns_its_bound_exits_the_process() -> None:
    child = textwrap.dedent(
        """
        import logging, signal, time
        from webhook.cli.serve import Shutdown
        logging.basicConfig(level=logging.INFO)
        shutdown = Shutdown(bound=0.5)
        shutdown.request(signal.SIGTERM)
        time.sleep(60)   # a stop step that never returns
        print("still running")
        """
    )
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "still running" not in result.stdout
    assert "shutdown took longer than" in result.stderr
