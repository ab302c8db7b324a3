"""Run ``safety-gate serve`` as a real process and talk to it over HTTPS, as the API server does."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GateProcess:
    def __init__(self, *, data_dir: pathlib.Path, postgres_dsn: str | None = None, redis_url: str | None = None,
                 policy: pathlib.Path | None = None, extra_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = [sys.executable, "-m", "webhook", "serve", "--port", str(self.port),
                     "--data-dir", str(data_dir)]
        if postgres_dsn:
            self.args += ["--postgres-dsn", postgres_dsn]
        if redis_url:
            self.args += ["--redis-url", redis_url]
        if policy:
            self.args += ["--policy", str(policy)]
        self.args += list(extra_args)
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "gate.log"
        self._client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> pathlib.Path:
        return self.data_dir / "tls" / "ca.crt"

    def start(self, *, timeout: float = 90.0, probe: str = "/readyz") -> GateProcess:
        """Start and wait until ``probe`` answers 200 (``/healthz`` for a gate expected not to be ready)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the gate writes to it for its whole life
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"safety-gate exited with {self.process.returncode}:\n{self.log()}")
            if self.ca_file.exists():
                try:
                    if self.client.get(probe, timeout=2).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"safety-gate not ready in {timeout}s:\n{self.log()}")

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, *, timeout: float = 10, **kwargs: Any) -> httpx.Client:
        """An HTTPS client that trusts only this gate's CA (one per thread when testing concurrency)."""
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca_file)),
                            timeout=timeout, **kwargs)

    def post(self, body: Any) -> httpx.Response:
        if isinstance(body, (bytes, str)):
            return self.client.post("/validate", content=body, headers={"content-type": "application/json"})
        return self.client.post("/validate", json=body)

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a review and return its ``response``; fails loudly on anything but a 200 review."""
        reply = self.post(body)
        assert reply.status_code == 200, f"{reply.status_code}: {reply.text}"
        answer = reply.json()
        assert answer["response"]["uid"] == body["request"]["uid"]
        return answer["response"]

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-5000:]
        except OSError:
            return ""

    def __enter__(self) -> GateProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
