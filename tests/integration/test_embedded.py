"""The embedded PostgreSQL and Redis: restarts keep data and port, and the suite's fixtures.

These servers carry the outage tests elsewhere in the suite ("PostgreSQL goes away and
comes back on the same address with the same data"), so that is what is pinned here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from webhook.store.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    ExternalPostgres,
    ExternalRedis,
    provide_postgres,
    provide_redis,
)

REPO = Path(__file__).resolve().parents[2]


def _wait_gone(pid: int, *, timeout: float = 30.0) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return False
    return True


# ------------------------------------------------------------------ PostgreSQL


async def test_postgres_restart_keeps_data_and_port(embedded_postgres_factory) -> None:
    pg = embedded_postgres_factory()
    assert pg.is_running()
    dsn, port = pg.dsn, pg.port
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
    await conn.execute("INSERT INTO kept VALUES (1, 'survives a restart')")
    await conn.close()

    pg.stop()
    assert not pg.is_running()
    with pytest.raises(OSError):
        await asyncpg.connect(dsn, timeout=2)

    pg.start()
    assert pg.is_running() and pg.port == port and pg.dsn == dsn
    conn = await asyncpg.connect(dsn)
    assert await conn.fetchval("SELECT note FROM kept WHERE id = 1") == "survives a restart"
    await conn.close()


async def test_postgres_new_process_on_same_data_dir_reuses_port(embedded_postgres_factory) -> None:
    first = embedded_postgres_factory(name="shared")
    conn = await asyncpg.connect(first.dsn)
    await conn.execute("CREATE TABLE t AS SELECT 42 AS answer")
    await conn.close()
    first.stop()

    # What a restarted `safety-gate serve` does: a new object on the same --data-dir.
    second = embedded_postgres_factory(name="shared", start=False)
    assert second.port == first.port
    second.start()
    conn = await asyncpg.connect(second.dsn)
    assert await conn.fetchval("SELECT answer FROM t") == 42
    await conn.close()


async def test_postgres_recovers_after_being_killed(embedded_postgres_factory) -> None:
    """A crashed server (stale postmaster.pid) comes back with committed data."""
    pg = embedded_postgres_factory()
    conn = await asyncpg.connect(pg.dsn)
    await conn.execute("CREATE TABLE committed AS SELECT 7 AS n")
    await conn.close()
    pid = pg._proc.pid  # noqa: SLF001 - simulating a crash needs the pid
    os.kill(pid, signal.SIGKILL)
    assert _wait_gone(pid)
    assert not pg.is_running()

    pg.start()
    conn = await asyncpg.connect(pg.dsn)
    assert await conn.fetchval("SELECT n FROM committed") == 7
    await conn.close()


def test_start_is_idempotent_and_stop_too(embedded_postgres_factory) -> None:
    pg = embedded_postgres_factory()
    pid = pg._proc.pid  # noqa: SLF001
    pg.start()
    assert pg._proc.pid == pid  # noqa: SLF001
    pg.stop()
    pg.stop()
    assert not pg.is_running()


def test_postgres_dsn_shape(embedded_postgres_factory) -> None:
    pg = embedded_postgres_factory()
    assert pg.dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    assert (pg.data_dir / "port").read_text().strip() == str(pg.port)
    assert (pg.data_dir / "postgres.log").exists()


def test_does_not_attach_to_a_foreign_server_on_its_port(embedded_redis_factory, tmp_path: Path) -> None:
    foreign = embedded_redis_factory(name="foreign")
    ours = EmbeddedRedis(data_dir=tmp_path / "ours", port=foreign.port)
    with pytest.raises(EmbeddedServerError, match="in use"):
        ours.start()
    assert not ours.is_running()
    pg = EmbeddedPostgres(data_dir=tmp_path / "pg", port=foreign.port)
    with pytest.raises(EmbeddedServerError, match="in use"):
        pg.start()


# ------------------------------------------------------------------------ Redis


def test_redis_restart_keeps_data_and_port(embedded_redis_factory) -> None:
    server = embedded_redis_factory()
    url, port = server.url, server.port
    assert url == f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    client.set("cooling:shop/cart", "until-21:30")
    client.close()

    server.stop()
    assert not server.is_running()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()

    server.start()
    assert server.is_running() and server.port == port
    client = redis.Redis.from_url(url)
    assert client.get("cooling:shop/cart") == b"until-21:30"
    client.close()


_CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from webhook.store.embedded import EmbeddedRedis
    server = EmbeddedRedis(data_dir=Path(sys.argv[1]))
    if sys.argv[2] == "thread":   # no parent-death signal from a non-main thread
        t = threading.Thread(target=server.start); t.start(); t.join()
    else:
        server.start()
    import redis
    redis.Redis.from_url(server.url).set("k", "v")
    print(server._proc.pid, flush=True)
    sys.stdin.read()   # wait to be killed
    """
)


def _start_in_child(data_dir: Path, how: str) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(data_dir), how],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, int(child.stdout.readline())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_server_does_not_outlive_a_hard_killed_parent(tmp_path: Path) -> None:
    child, server_pid = _start_in_child(tmp_path / "redis", "main")
    child.kill()
    child.wait()
    assert _wait_gone(server_pid), "redis-server outlived its SIGKILLed parent"


def test_orphan_left_on_the_data_dir_is_replaced(tmp_path: Path) -> None:
    """A server of ours still running from a dead gate is shut down, not attached to."""
    data_dir = tmp_path / "redis"
    child, orphan_pid = _start_in_child(data_dir, "thread")
    child.kill()
    child.wait()
    assert psutil.pid_exists(orphan_pid)
    server = EmbeddedRedis(data_dir=data_dir)
    try:
        server.start()
        assert server._proc.pid != orphan_pid  # noqa: SLF001
        assert _wait_gone(orphan_pid, timeout=5)
        assert redis.Redis.from_url(server.url).get("k") == b"v"
    finally:
        server.stop()
        if psutil.pid_exists(orphan_pid):
            os.kill(orphan_pid, signal.SIGKILL)


# -------------------------------------------------------- choosing and fixtures


def test_external_dsn_and_url_start_nothing(tmp_path: Path) -> None:
    with provide_postgres(dsn="postgresql://gate@db.example:5432/gate", data_dir=tmp_path) as pg:
        assert pg == ExternalPostgres(dsn="postgresql://gate@db.example:5432/gate")
    with provide_redis(url="redis://cache.example:6379/2", data_dir=tmp_path) as cache:
        assert cache == ExternalRedis(url="redis://cache.example:6379/2")
    assert list(tmp_path.iterdir()) == []


def test_embedded_is_chosen_without_dsn(tmp_path: Path) -> None:
    with provide_redis(url=None, data_dir=tmp_path / "r") as cache:
        assert isinstance(cache, EmbeddedRedis) and cache.is_running()
    assert not cache.is_running()
    with pytest.raises(ValueError), provide_postgres(dsn=None):
        pass


async def test_fresh_database_is_empty_and_private(fresh_database: str, postgres_dsn: str) -> None:
    assert fresh_database.rsplit("/", 1)[1].startswith("sg_")
    conn = await asyncpg.connect(fresh_database)
    tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    await conn.execute("CREATE TABLE mine (x int)")
    await conn.close()
    assert tables == 0
    admin = await asyncpg.connect(postgres_dsn)
    assert await admin.fetchval("SELECT to_regclass('public.mine')") is None
    await admin.close()


def test_fresh_redis_url_is_flushed_and_not_db0(fresh_redis_url: str, redis_url: str) -> None:
    db = int(fresh_redis_url.rsplit("/", 1)[1])
    assert 1 <= db <= 15
    client = redis.Redis.from_url(fresh_redis_url)
    assert client.dbsize() == 0
    client.set("mine", "1")
    client.close()
    assert redis.Redis.from_url(redis_url).get("mine") is None


def test_fixtures_use_external_servers_from_env(postgres_dsn: str, redis_url: str) -> None:
    env = {**os.environ, "TEST_POSTGRES_DSN": postgres_dsn, "TEST_REDIS_URL": redis_url, "SG_EXPECT_EXTERNAL": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         str((Path(__file__).parent / "external_probe.py").relative_to(REPO))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
