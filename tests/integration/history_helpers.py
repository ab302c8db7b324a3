"""A history store on the test's fresh PostgreSQL and Redis, and an admitted scale to write to it:
for tests that talk to ``HistoryStore`` directly (locks, reads), without a gate in front."""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.server.runtime import CACHE_HORIZON
from webhook.store.cache import RedisCache
from webhook.store.effects import Effects
from webhook.store.history import LOCK_WAIT, HistoryStore
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool

AGENT = "system:serviceaccount:remediation:agent"
TARGET = TargetRef("shop", "Deployment", "cart", "apps/v1")


def admitted(*, at: datetime.datetime | None = None, record: bool = True) -> Effects:
    """An automation scale of ``TARGET``, allowed, decided ``at`` (now by default)."""
    at = at or datetime.datetime.now(datetime.timezone.utc)
    event = ActionEvent(uid=str(uuid.uuid4()), at=at, target=TARGET, action_type="scale_deployment", actor=AGENT,
                        actor_class=ActorClass.AUTOMATION, replicas_before=3, replicas_after=4)
    return Effects(uid=event.uid, decided_at=at, event=event, record=record, outcome="allow", allowed=True,
                   code=None, pattern=None, strategy=None, message=None, warnings=(), latency_ms=1.0)


@contextlib.asynccontextmanager
async def history_store(dsn: str, redis_url: str, *, pool_size: int = 2,
                        lock_wait: float = LOCK_WAIT) -> AsyncIterator[HistoryStore]:
    await migrate(dsn)
    pool = await create_pool(dsn, max_size=pool_size)
    cache = RedisCache.from_url(redis_url, cluster_id="default", horizon=CACHE_HORIZON)
    try:
        yield HistoryStore(postgres=PostgresStore(pool, cluster_id="default"), cache=cache, lock_wait=lock_wait)
    finally:
        await cache.close()
        await pool.close()
