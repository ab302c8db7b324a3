"""SQL migrations from ``migrations/``, applied in order, once, under an advisory lock.

Every replica runs this at start and the chart runs it as a hook; the lock makes concurrent
runs wait for each other instead of racing, and ``schema_migrations`` makes them idempotent.
"""

from __future__ import annotations

import logging
import pathlib

import asyncpg

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = pathlib.Path(__file__).parent / "migrations"
_LOCK_KEY = 0x5AFE6A7E  # any constant unique to safety-gate


def migration_files(directory: pathlib.Path = MIGRATIONS_DIR) -> list[pathlib.Path]:
    return sorted(path for path in directory.glob("*.sql") if path.name[:4].isdigit())


async def migrate(dsn: str, *, directory: pathlib.Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; return the names applied by this call."""
    connection = await asyncpg.connect(dsn)
    try:
        return await migrate_connection(connection, directory=directory)
    finally:
        await connection.close()


async def migrate_connection(connection: asyncpg.Connection, *,
                             directory: pathlib.Path = MIGRATIONS_DIR) -> list[str]:
    applied_now: list[str] = []
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
        for path in migration_files(directory):
            if path.name in done:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text())
                await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", path.name)
            logger.info("applied migration %s", path.name)
            applied_now.append(path.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
