"""The process's moving parts: stores (embedded or external), migrations, policies and the gate.

Embedded and external stores share one code path: embedded mode only starts local servers
and hands their DSN and URL to the same asyncpg/redis clients production uses.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Any

from webhook.engine.gate import Gate
from webhook.policy.loader import load_policy_file
from webhook.policy.provider import PolicyProvider
from webhook.server import health, validate
from webhook.settings import Settings
from webhook.store.cache import RedisCache
from webhook.store.history import HistoryStore
from webhook.store.migrate import migrate
from webhook.store.postgres import PostgresStore, create_pool

logger = logging.getLogger(__name__)

CACHE_HORIZON = datetime.timedelta(hours=24)


@dataclasses.dataclass
class EmbeddedStores:
    """Local PostgreSQL and Redis under the data dir, for ``serve`` without external stores."""

    postgres: Any = None
    redis: Any = None

    @classmethod
    def start(cls, settings: Settings, *, redis: bool = True) -> EmbeddedStores:
        from webhook.store.embedded import EmbeddedPostgres, EmbeddedRedis

        stores = cls()
        data_dir = settings.data_dir.resolve()
        if not settings.postgres_dsn:
            stores.postgres = EmbeddedPostgres(data_dir=data_dir / "postgres")
            stores.postgres.start()
            settings.postgres_dsn = stores.postgres.dsn
        if redis and not settings.redis_url:
            stores.redis = EmbeddedRedis(data_dir=data_dir / "redis")
            stores.redis.start()
            settings.redis_url = stores.redis.url
        return stores

    def stop(self) -> None:
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres: PostgresStore | None = None
        self.cache: RedisCache | None = None
        self.gate: Gate | None = None
        self.policies = PolicyProvider(
            file_policies=load_policy_file(settings.policy) if settings.policy else ())

    async def start(self) -> None:
        settings = self.settings
        assert settings.postgres_dsn, "a PostgreSQL DSN is required (or embedded mode)"
        await migrate(settings.postgres_dsn)
        pool = await create_pool(settings.postgres_dsn)
        self.postgres = PostgresStore(pool, cluster_id=settings.cluster_id)
        if settings.redis_url:
            self.cache = RedisCache.from_url(settings.redis_url, cluster_id=settings.cluster_id,
                                             horizon=CACHE_HORIZON)
        self.gate = Gate(
            history=HistoryStore(postgres=self.postgres, cache=self.cache),
            policies=self.policies,
            rules=settings.actor_rules(),
            excluded_namespaces=settings.excluded_namespaces,
            on_decision=validate.observe,
        )

    async def stop(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        if self.postgres is not None:
            await self.postgres.pool.close()

    async def check_stores(self) -> dict[str, bool]:
        checks = {"postgres": self.postgres is not None and await health.probe(self.postgres.ping())}
        if self.cache is not None:
            checks["redis"] = await health.probe(self.cache.ping())
        return checks
