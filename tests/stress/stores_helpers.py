"""Build the gate's store stack in-process on the suite's real PostgreSQL and Redis, the way
``Runtime.start`` does, for tests that need to hold a lock or look inside the outbox."""

from __future__ import annotations

import contextlib
import datetime
import json
import pathlib
from collections.abc import AsyncIterator

from webhook.admission.review import AdmissionRequest, parse_review
from webhook.engine.gate import Gate
from webhook.policy.provider import PolicyProvider
from webhook.settings import Settings
from webhook.store.cache import RedisCache
from webhook.store.history import HistoryStore
from webhook.store.locks import AdvisoryLocks, open_lock_pool
from webhook.store.migrate import migrate
from webhook.store.outbox import Outbox
from webhook.store.postgres import PostgresStore, create_pool

HORIZON = datetime.timedelta(hours=24)


@contextlib.asynccontextmanager
async def store_stack(*, dsn: str, redis_url: str | None, spool: pathlib.Path, cluster_id: str = "default",
                      lock_wait: float = 2.5, migrated: bool = True) -> AsyncIterator[HistoryStore]:
    if migrated:
        await migrate(dsn)
    pool = await create_pool(dsn, min_size=0, reset_sessions=False)
    lock_pool = await open_lock_pool(dsn)
    cache = RedisCache.from_url(redis_url, cluster_id=cluster_id, horizon=HORIZON) if redis_url else None
    outbox = Outbox(redis=cache.client if cache else None, stream=f"sg:{cluster_id}:outbox", spool=spool)
    history = HistoryStore(postgres=PostgresStore(pool, cluster_id=cluster_id), cache=cache, outbox=outbox,
                           locks=AdvisoryLocks(lock_pool, cluster_id=cluster_id), lock_wait=lock_wait)
    try:
        yield history
    finally:
        if cache is not None:
            await cache.close()
        await lock_pool.close()
        await pool.close()


def gate_on(history: HistoryStore, *, fail_closed: bool = False) -> Gate:
    settings = Settings()
    return Gate(history=history, policies=PolicyProvider(), rules=settings.actor_rules(), fail_closed=fail_closed)


def request_of(body: dict) -> AdmissionRequest:
    return parse_review(json.dumps(body).encode()).request
