"""One owner per data dir, and a supervisor that brings a dead embedded store back (reaped, same port).

The servers are real (the suite's embedded PostgreSQL and Redis); deaths are real ``kill -9``s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from webhook.store.embedded import DataDirClaim, EmbeddedServerError, StoreOwner, StoreSupervisor, _Backoff

REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate, *, timeout: float = 60.0, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def reaped(pid: int) -> bool:
    """Our dead child is gone for good: no unreaped zombie holds its pid (a live process there reused it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ------------------------------------------------------------------- the claim


_OWNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from webhook.store.embedded import DataDirClaim
    claim = DataDirClaim(data_dir=Path(sys.argv[1]))
    assert claim.try_claim()
    claim.publish(postgres_dsn="postgresql://postgres@127.0.0.1:1/postgres", redis_url=None)
    print("owned", flush=True)
    sys.stdin.read()
    """
)


def test_a_live_owner_is_seen_and_a_second_claim_refused(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path)], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "owned"
        claim = DataDirClaim(data_dir=tmp_path)
        assert claim.try_claim() is False
        owner = claim.wait_for_owner(timeout=10)
        assert owner is not None and owner.pid == child.pid and owner.alive()
        assert owner.postgres_dsn == "postgresql://postgres@127.0.0.1:1/postgres" and owner.redis_url is None
        assert "safety-gate" in owner.describe() or str(child.pid) in owner.describe()
    finally:
        child.kill()
        child.wait()
    # The kernel dropped the dead owner's lock: the data dir is free, and the record it left is stale.
    claim = DataDirClaim(data_dir=tmp_path)
    assert claim.owner() is None
    assert claim.try_claim() is True
    claim.release()


def test_a_record_naming_a_reused_pid_is_stale(tmp_path: Path) -> None:
    """Our own pid with another start time: the pid was reused, the owner is gone."""
    me = psutil.Process(os.getpid())
    record = {"pid": me.pid, "started": round(me.create_time(), 2) - 100.0, "command": "safety-gate serve",
              "postgres_dsn": "postgresql://postgres@127.0.0.1:1/postgres", "redis_url": None}
    (tmp_path / "stores.json").write_text(json.dumps(record))
    assert DataDirClaim(data_dir=tmp_path).owner() is None
    assert StoreOwner(**{**record, "started": round(me.create_time(), 2)}).alive()


def test_publish_needs_the_claim_and_release_removes_only_our_record(tmp_path: Path) -> None:
    claim = DataDirClaim(data_dir=tmp_path)
    with pytest.raises(EmbeddedServerError, match="without holding"):
        claim.publish(postgres_dsn=None, redis_url=None)
    assert claim.try_claim() and claim.try_claim()  # idempotent
    owner = claim.publish(postgres_dsn=None, redis_url="redis://127.0.0.1:2/0")
    assert json.loads((tmp_path / "stores.json").read_text())["pid"] == os.getpid() == owner.pid
    claim.release()
    assert not (tmp_path / "stores.json").exists()
    assert DataDirClaim(data_dir=tmp_path).try_claim()


# -------------------------------------------------------------- the supervisor


def test_a_killed_redis_is_reaped_and_restarted_on_its_port_with_its_data(embedded_redis_factory) -> None:
    server = embedded_redis_factory()
    redis.Redis.from_url(server.url).set("cooling:shop/cart", "until-21:30")
    time.sleep(1.2)  # appendfsync everysec: the write is on disk
    supervisor = StoreSupervisor(servers=[server])
    supervisor.start()
    try:
        first = server.pid
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: supervisor.restarts == 1, what="redis restarted")
        assert server.pid != first and server.is_running()
        assert reaped(first)
        client = redis.Redis.from_url(server.url)
        assert client.get("cooling:shop/cart") == b"until-21:30"
        client.close()
    finally:
        assert supervisor.stop(timeout=15)


async def test_a_killed_postgres_is_reaped_and_restarted_with_committed_data(embedded_postgres_factory) -> None:
    server = embedded_postgres_factory()
    connection = await asyncpg.connect(server.dsn)
    await connection.execute("CREATE TABLE kept AS SELECT 11 AS n")
    await connection.close()
    supervisor = StoreSupervisor(servers=[server])
    supervisor.start()
    try:
        first = server.pid
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: supervisor.restarts == 1, timeout=60, what="postgres restarted")
        assert server.pid != first and server.is_running()
        assert reaped(first)
        connection = await asyncpg.connect(server.dsn)
        assert await connection.fetchval("SELECT n FROM kept") == 11
        await connection.close()
    finally:
        assert supervisor.stop(timeout=15)


def test_backoff_grows_between_failed_starts_and_stop_is_prompt(embedded_redis_factory, tmp_path: Path) -> None:
    """A store that cannot start (its port taken by a foreign server) is retried with growing delays."""
    foreign = embedded_redis_factory(name="foreign")
    server = embedded_redis_factory(name="ours", start=False)
    (server.data_dir).mkdir(parents=True, exist_ok=True)
    (server.data_dir / "port").write_text(f"{foreign.port}\n")
    supervisor = StoreSupervisor(servers=[server], first_backoff=0.2, max_backoff=0.8)
    supervisor.start()
    try:
        wait_until(lambda: supervisor.failures(server) >= 4, timeout=30, what="four failed starts")
        assert not server.is_running() and supervisor.restarts == 0
        assert foreign.is_running(), "the foreign server on the port was left alone"
    finally:
        assert supervisor.stop(timeout=15)


def test_the_backoff_schedule_restarts_at_once_then_doubles_up_to_its_cap() -> None:
    backoff = _Backoff(first=0.5, cap=4.0)
    assert [backoff.schedule(now=100.0) for _ in range(6)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.next_try == 104.0
    backoff.reset()
    assert backoff.schedule(now=200.0) == 0.0


# ------------------------------------------------------------ owner and attached


def test_a_second_user_of_the_data_dir_attaches_and_leaves_the_stores_running() -> None:
    """In one process as across processes: the second ``EmbeddedStores`` uses the owner's servers."""
    import shutil
    import tempfile

    from webhook.server.runtime import EmbeddedStores, StoreRole
    from webhook.settings import Settings

    scratch = Path(tempfile.mkdtemp(prefix="safety-gate-test-attach-"))
    try:
        owner = EmbeddedStores.start(Settings(data_dir=scratch))
        first_settings = owner.completed(Settings(data_dir=scratch))  # settings are frozen: a completed copy
        try:
            assert owner.role is StoreRole.OWNER
            record = json.loads((scratch / "stores.json").read_text())
            assert record["postgres_dsn"] == first_settings.postgres_dsn
            assert record["redis_url"] == first_settings.redis_url

            attached = EmbeddedStores.start(Settings(data_dir=scratch), redis=False)
            second_settings = attached.completed(Settings(data_dir=scratch))
            assert attached.role is StoreRole.ATTACHED
            assert second_settings.postgres_dsn == first_settings.postgres_dsn
            assert second_settings.redis_url is None  # asked for PostgreSQL only
            pids = (owner.postgres.pid, owner.redis.pid)
            attached.stop()
            assert (owner.postgres.pid, owner.redis.pid) == pids
            assert owner.postgres.is_running() and owner.redis.is_running()
            assert redis.Redis.from_url(first_settings.redis_url).ping()
        finally:
            owner.stop()
        assert not owner.postgres.is_running() and not owner.redis.is_running()
        assert not (scratch / "stores.json").exists()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
