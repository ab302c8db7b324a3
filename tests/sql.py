"""Looking into the gate's PostgreSQL from a test, synchronously."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg


def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def scalar(dsn: str, sql: str, *args: Any) -> Any:
    rows = fetch(dsn, sql, *args)
    return rows[0][0] if rows else None
