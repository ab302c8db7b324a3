"""SIGTERM under a bounded stream of reviews: every review in flight is answered, the process exits
within the documented bound (``SHUTDOWN_BOUND_SECONDS``, below the chart's 30s grace period) with
status 0, and the embedded stores are stopped with it.

Each request opens its own connection (``Connection: close``), so the client can tell "never
reached the gate" (the connection or TLS handshake was refused: the listener is closed) from "sent
and then dropped" (any error after the request went out, or an answer that is not a review). The
second kind must never happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests import reviews
from tests.gateproc import GateProcess, free_port
from tests.stress.embedded_gate import embedded_gate, reaped, store_pids, wait_until
from webhook.cli.serve import SHUTDOWN_BOUND_SECONDS

CLIENTS = 8
PER_CLIENT = 400  # bounded: the stream ends by itself even if the gate never stopped
SIGNAL_AFTER = 120  # answered reviews before the SIGTERM


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answered: int = 0
    answered_after_signal: int = 0
    refused: int = 0  # never reached the gate: connection refused once it stopped listening
    lost: list[str] = field(default_factory=list)
    signalled: threading.Event = field(default_factory=threading.Event)


def stream(gate: GateProcess, tally: Tally, index: int) -> None:
    with gate.new_client(timeout=30, headers={"connection": "close"}) as client:
        for n in range(PER_CLIENT):
            body = reviews.scale(before=n + 1, after=n + 2, name=f"load-{index}", namespace=f"load-{index}")
            after_signal = tally.signalled.is_set()
            try:
                reply = client.post("/validate", json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                with tally.lock:
                    tally.refused += 1
                if not tally.signalled.is_set():
                    tally.lost.append(f"client {index}: refused before the signal")
                return
            except httpx.HTTPError as exc:
                with tally.lock:
                    tally.lost.append(f"client {index} request {n}: {type(exc).__name__}: {exc}")
                return
            ok = reply.status_code == 200 and reply.json()["response"]["uid"] == body["request"]["uid"]
            with tally.lock:
                if not ok:
                    tally.lost.append(f"client {index} request {n}: HTTP {reply.status_code} {reply.text[:200]}")
                    return
                tally.answered += 1
                if after_signal:
                    tally.answered_after_signal += 1


def run_storm_and_terminate(gate: GateProcess) -> tuple[Tally, int]:
    tally = Tally()
    threads = [threading.Thread(target=stream, args=(gate, tally, i), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: tally.answered >= SIGNAL_AFTER or tally.lost, timeout=120, what="the stream under way")
    assert not tally.lost, tally.lost
    process = gate.process
    assert process is not None
    os.kill(process.pid, signal.SIGTERM)
    tally.signalled.set()
    try:
        code = process.wait(timeout=SHUTDOWN_BOUND_SECONDS + 5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"safety-gate still running {SHUTDOWN_BOUND_SECONDS + 5:.0f}s after SIGTERM:\n{gate.log()}")
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    print(f"\nSIGTERM storm: {tally.answered} answered ({tally.answered_after_signal} after the signal), "
          f"{tally.refused} refused at connect, {len(tally.lost)} lost, exit {code}")
    return tally, code


@pytest.fixture
def external_gate(tmp_path, fresh_database, fresh_redis_url) -> Iterator[GateProcess]:
    gate = GateProcess(data_dir=tmp_path / "gate", postgres_dsn=fresh_database, redis_url=fresh_redis_url,
                       extra_args=["--metrics-port", str(free_port())])
    gate.start()
    try:
        yield gate
    finally:
        gate.stop()


def test_sigterm_answers_every_review_in_flight_and_exits_within_the_bound(external_gate: GateProcess) -> None:
    """With the plain-HTTP metrics server beside the HTTPS one, as the chart runs it."""
    tally, code = run_storm_and_terminate(external_gate)
    assert tally.lost == []
    assert code == 0, external_gate.log()
    assert tally.answered >= SIGNAL_AFTER
    log = external_gate.log_path.read_text()
    assert "stopped after SIGTERM" in log
    assert "did not stop within" not in log and "took over" not in log and "shutdown took longer" not in log


def test_sigterm_with_embedded_stores_stops_them_too() -> None:
    with embedded_gate() as gate:
        stores = store_pids(gate)
        tally, code = run_storm_and_terminate(gate)
        assert tally.lost == []
        assert code == 0, gate.log()
        for pid in stores:
            assert pid is not None and reaped(pid)
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not (gate.data_dir / "stores.json").exists()
        assert "stopped after SIGTERM" in gate.log_path.read_text()


def test_the_shutdown_bound_fits_the_charts_grace_period() -> None:
    import pathlib

    import yaml

    values = yaml.safe_load((pathlib.Path(__file__).resolve().parents[2] / "charts" / "safety-gate" /
                             "values.yaml").read_text())
    assert values["terminationGracePeriodSeconds"] > SHUTDOWN_BOUND_SECONDS
