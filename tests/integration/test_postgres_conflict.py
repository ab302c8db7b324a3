"""A statement PostgreSQL rolls back (a deadlock) is not an outage: that one call fails as
``PostgresConflict`` and PostgreSQL stays in use. Before, a deadlock with a partition's DDL
marked PostgreSQL down and sent every following decision to the outbox until the next check."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.stress.stores_helpers import store_stack
from webhook.store.errors import PostgresConflict, StoreMode


async def waiting_for_a_lock(connection: asyncpg.Connection, pid: int) -> None:
    for _ in range(500):
        if await connection.fetchval("SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the other transaction never waited for the lock")


async def test_a_deadlock_fails_one_call_and_postgres_stays_up(fresh_database, fresh_redis_url, tmp_path):
    async with store_stack(dsn=fresh_database, redis_url=fresh_redis_url, spool=tmp_path / "spool") as history:
        other = await asyncpg.connect(fresh_database)
        try:
            await other.execute("CREATE TABLE scratch (id int PRIMARY KEY); INSERT INTO scratch VALUES (1), (2)")
            victim_holds_one = asyncio.Event()
            other_waits = asyncio.Event()

            async def victim() -> None:  # the call through the store: it waits second, so it is the one rolled back
                async with history.postgres.pool.acquire() as connection, connection.transaction():
                    await connection.execute("SET LOCAL deadlock_timeout = '50ms'")
                    await connection.execute("SELECT 1 FROM scratch WHERE id = 1 FOR UPDATE")
                    victim_holds_one.set()
                    await other_waits.wait()
                    await connection.execute("SELECT 1 FROM scratch WHERE id = 2 FOR UPDATE")

            async def opponent() -> None:
                async with other.transaction():
                    await other.execute("SET LOCAL deadlock_timeout = '10s'")
                    await victim_holds_one.wait()
                    await other.execute("SELECT 1 FROM scratch WHERE id = 2 FOR UPDATE")
                    taking_one = asyncio.ensure_future(other.execute("SELECT 1 FROM scratch WHERE id = 1 FOR UPDATE"))
                    async with history.postgres.pool.acquire() as watcher:
                        await waiting_for_a_lock(watcher, other.get_server_pid())
                    other_waits.set()
                    await taking_one  # granted once the victim's transaction is rolled back

            fight = asyncio.ensure_future(opponent())
            with pytest.raises(PostgresConflict, match="deadlock"):
                await history.in_postgres(victim)
            await fight
        finally:
            await other.close()
        assert history.postgres_up
        assert history.mode() is StoreMode.HEALTHY
