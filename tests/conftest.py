"""Real PostgreSQL and Redis for the whole test-suite (DESIGN §9).

By default the embedded servers of :mod:`webhook.store.embedded` are started once per
session under pytest's temporary directory; ``TEST_POSTGRES_DSN`` / ``TEST_REDIS_URL``
point the suite at external servers instead (their user needs CREATEDB).

Isolation per test:

* ``fresh_database`` — a new, empty database ``sg_<uuid hex>`` on the session server,
  dropped (``WITH (FORCE)``) afterwards. Yields its DSN.
* ``fresh_redis_url`` — a Redis *logical database number*, rotating over 1..15 (0 is
  left to users of the session-wide ``redis_url``), flushed before the test. Yields
  the URL ending in ``/<n>``. Two tests never share a number at the same time within
  one pytest process; concurrent pytest processes against one *external* Redis would
  trample each other's numbers — give each its own server.

Outage tests get private servers they may stop and start again (same port, same
data): ``embedded_postgres_factory`` / ``embedded_redis_factory``. They are always
embedded, whatever the environment says, and stopped at teardown even if the test
failed.

Server data lives in ``$TMPDIR/safety-gate-test-*`` directories, not under pytest's
``tmp_path``: as root, PostgreSQL runs as an unprivileged user that must be able to
traverse every parent of its data directory, and every pytest session starting on the
machine resets ``/tmp/pytest-of-<user>`` to mode 0700 — a concurrent session would
make our servers fail to start. The directories are removed at teardown.

Only suite-wide store fixtures belong here; feature fixtures live in subfolder conftests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from webhook.store.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    ExternalPostgres,
    ExternalRedis,
    provide_postgres,
    provide_redis,
)

POSTGRES_ENV = "TEST_POSTGRES_DSN"
REDIS_ENV = "TEST_REDIS_URL"


def _run_sync(coro_factory: Callable[[], object]) -> object:
    """Run a coroutine to completion on a private loop in a private thread.

    Keeps these sync fixtures independent of whatever event loop pytest-asyncio
    manages in the main thread (``asyncio.run`` there would replace it).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()  # type: ignore[arg-type]


@contextlib.contextmanager
def _scratch_dir(prefix: str) -> Iterator[Path]:
    """A private directory outside pytest's basetemp (see the module docstring), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"safety-gate-test-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _execute(dsn: str, statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    _run_sync(run)


# ------------------------------------------------------------ session servers


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ExternalPostgres | EmbeddedPostgres]:
    """The session's PostgreSQL: external if ``TEST_POSTGRES_DSN`` is set, else embedded."""
    dsn = os.environ.get(POSTGRES_ENV) or None
    with _scratch_dir("postgres") as scratch, provide_postgres(dsn=dsn, data_dir=scratch / "postgres") as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ExternalRedis | EmbeddedRedis]:
    """The session's Redis: external if ``TEST_REDIS_URL`` is set, else embedded."""
    url = os.environ.get(REDIS_ENV) or None
    with _scratch_dir("redis") as scratch, provide_redis(url=url, data_dir=scratch / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: ExternalPostgres | EmbeddedPostgres) -> str:
    return postgres_server.dsn


@pytest.fixture(scope="session")
def redis_url(redis_server: ExternalRedis | EmbeddedRedis) -> str:
    return redis_server.url


# ------------------------------------------------------------ per-test isolation


@pytest.fixture
def fresh_database(postgres_dsn: str) -> Iterator[str]:
    """DSN of a new empty database, dropped after the test (open connections are cut)."""
    name = f"sg_{uuid.uuid4().hex}"
    _execute(postgres_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield _with_path(postgres_dsn, f"/{name}")
    finally:
        _execute(postgres_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_redis_db_numbers = itertools.cycle(range(1, 16))


@pytest.fixture
def fresh_redis_url(redis_url: str) -> Iterator[str]:
    """URL of a flushed Redis logical database (1..15, rotating); see the module docstring."""
    import redis

    url = _with_path(redis_url, f"/{next(_redis_db_numbers)}")
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    yield url


# ------------------------------------------------------------ outage tests


@contextlib.contextmanager
def _factory(kind: type[EmbeddedPostgres] | type[EmbeddedRedis], base: Path) -> Iterator[Callable[..., object]]:
    servers: list[EmbeddedPostgres | EmbeddedRedis] = []

    def make(*, name: str | None = None, start: bool = True) -> EmbeddedPostgres | EmbeddedRedis:
        server = kind(data_dir=base / (name or f"{kind.__name__.lower()}-{len(servers)}"))
        servers.append(server)
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        errors = []
        for server in reversed(servers):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others; raised together below
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def embedded_postgres_factory() -> Iterator[Callable[..., EmbeddedPostgres]]:
    """``make(*, name=None, start=True) -> EmbeddedPostgres``: a private server to stop/start at will.

    The same ``name`` twice gives two objects on the same data directory (a restarted gate).
    """
    with _scratch_dir("postgres") as base, _factory(EmbeddedPostgres, base) as make:
        yield make  # type: ignore[misc]


@pytest.fixture
def embedded_redis_factory() -> Iterator[Callable[..., EmbeddedRedis]]:
    """``make(*, name=None, start=True) -> EmbeddedRedis``: a private server to stop/start at will."""
    with _scratch_dir("redis") as base, _factory(EmbeddedRedis, base) as make:
        yield make  # type: ignore[misc]
