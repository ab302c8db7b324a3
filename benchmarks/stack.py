"""The processes a benchmark runs against: PostgreSQL, Redis, the gate, the no-op webhook.

PostgreSQL and Redis are the project's embedded servers started here, outside the gate, and
handed to it as ``--postgres-dsn``/``--redis-url`` exactly as external stores would be: the
gate's RSS is then its own, and a benchmark can flush Redis or keep a seeded database.
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence

import httpx

from tests.gateproc import GateProcess, free_port
from webhook.store.embedded import EmbeddedPostgres, EmbeddedRedis

API_TOKEN = "benchmark-token"
LOG_DIR = pathlib.Path(tempfile.gettempdir()) / "sg-bench-logs"  # the gate's log of the last run of each part


@contextlib.contextmanager
def stores(data_dir: pathlib.Path, *,
           postgres_settings: Mapping[str, str] | None = None) -> Iterator[tuple[EmbeddedPostgres, EmbeddedRedis]]:
    """PostgreSQL (with these extra settings) and Redis under ``data_dir`` (reused if it already
    holds a database)."""
    postgres = EmbeddedPostgres(data_dir=data_dir / "postgres", settings=postgres_settings)
    redis = EmbeddedRedis(data_dir=data_dir / "redis")
    postgres.start(timeout=120)
    try:
        redis.start()
        try:
            yield postgres, redis
        finally:
            redis.stop()
    finally:
        postgres.stop()


@contextlib.contextmanager
def gate(*, name: str, work_dir: pathlib.Path, postgres: EmbeddedPostgres, redis: EmbeddedRedis,
         extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> Iterator[GateProcess]:
    """``safety-gate serve`` on these stores, with a bearer token for the history API; its log is
    kept as ``LOG_DIR/<name>.log``. ``env``: settings that have no flag (``SAFETY_GATE_*``)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    tokens = work_dir / "api-tokens"
    tokens.write_text(f"{API_TOKEN},benchmark\n")
    process = GateProcess(data_dir=work_dir / "gate", postgres_dsn=postgres.dsn, redis_url=redis.url,
                          extra_args=["--api-token-file", str(tokens), *extra_args], env=env)
    try:
        with process:
            yield process
    finally:
        LOG_DIR.mkdir(exist_ok=True)
        if process.log_path.exists():
            shutil.copyfile(process.log_path, LOG_DIR / f"{name}.log")


@contextlib.contextmanager
def noop_webhook(*, tls_dir: pathlib.Path, log: pathlib.Path) -> Iterator[tuple[str, int]]:
    """The no-op webhook on the gate's certificate; yields its base URL and pid."""
    port = free_port()
    with open(log, "ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.noop", "--port", str(port),
                                    "--tls-dir", str(tls_dir)], stdout=output, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    try:
        _wait_until_listening(url, ca=tls_dir / "ca.crt", process=process)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_listening(url: str, *, ca: pathlib.Path, process: subprocess.Popen[bytes],
                          timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the no-op webhook exited with {process.returncode}")
            try:
                client.post(f"{url}/validate", content=b"{}")
                return
            except httpx.HTTPError:
                time.sleep(0.1)
    raise RuntimeError(f"the no-op webhook did not listen on {url} within {timeout}s")


def rss_mib(pid: int) -> float:
    """Resident memory of one process (not its children), in MiB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
