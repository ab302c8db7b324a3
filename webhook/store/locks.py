"""Decision locks in PostgreSQL, for while Redis is down: session advisory locks on a pool of their own.

Why a pool of their own: a request waiting for a lock holds a connection the whole time. On the
admission pool, a storm of waiters would take every connection, and the one request holding the
lock could no longer read or write its decision — the pool would time out and the gate would take
that for a PostgreSQL outage (issue 12). Here waiters queue first for a lock connection (FIFO) and
then inside PostgreSQL (``pg_advisory_lock``, bounded by ``lock_timeout``), never on the
connections decisions need, and never spinning.

A lock held past the wait budget is ``LockBusy``: the stores answered, the request should be
retried. The locks end with their session, so a crashed replica can never leave one behind.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from webhook.store.errors import LockBusy, PostgresUnavailable
from webhook.store.postgres import create_pool, postgres_error

LOCK_POOL_SIZE = 10
Release = Callable[[], Awaitable[None]]


def lock_key(cluster_id: str, name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock`` (collisions only serialize a little more)."""
    digest = hashlib.blake2b(f"{cluster_id}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def open_lock_pool(dsn: str, *, size: int = LOCK_POOL_SIZE) -> asyncpg.Pool:
    """The lock pool: asyncpg's reset on release runs ``pg_advisory_unlock_all()`` and ``RESET ALL``,
    so a connection goes back holding nothing and with the default ``lock_timeout``."""
    return await create_pool(dsn, min_size=0, max_size=size, command_timeout=None, reset_sessions=True)


class AdvisoryLocks:
    def __init__(self, pool: asyncpg.Pool, *, cluster_id: str) -> None:
        self.pool = pool
        self.cluster_id = cluster_id

    async def acquire(self, names: Sequence[str], *, wait: float) -> Release:
        """Take every named lock, in order, on one connection, within ``wait`` seconds in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            connection = await self.pool.acquire(timeout=wait)
        except TimeoutError:
            raise LockBusy(f"no lock connection free within {wait}s (locks {', '.join(names)})") from None
        except Exception as exc:
            raise _translated(exc) from exc
        try:
            for name in names:
                remaining_ms = int((deadline - loop.time()) * 1000)
                if remaining_ms <= 0:
                    raise LockBusy(f"lock {name} busy for {wait}s")
                # One round trip; both values are integers we computed, nothing from a request.
                await asyncio.wait_for(connection.execute(
                    f"SET lock_timeout = {remaining_ms}; SELECT pg_advisory_lock({lock_key(self.cluster_id, name)})"),
                    timeout=remaining_ms / 1000 + 1)
        except asyncpg.LockNotAvailableError:
            await self._give_back(connection)
            raise LockBusy(f"lock {name} busy for {wait}s") from None
        except BaseException as exc:
            await self._give_back(connection)
            if isinstance(exc, Exception) and not isinstance(exc, LockBusy):
                raise _translated(exc) from exc
            raise

        async def release() -> None:
            await self._give_back(connection)

        return release

    async def _give_back(self, connection: asyncpg.Connection) -> None:
        """Release into the pool; its reset unlocks everything. If that fails, the connection is
        closed, which ends the session and its locks just the same."""
        try:
            await self.pool.release(connection)
        except Exception:  # noqa: BLE001 - a connection that cannot go back is closed instead
            connection.terminate()


def _translated(exc: Exception) -> Exception:
    error = postgres_error(exc)
    if isinstance(error, PostgresUnavailable):
        return error
    if isinstance(exc, asyncio.TimeoutError):
        return PostgresUnavailable("lock statement timed out")
    return error or exc
