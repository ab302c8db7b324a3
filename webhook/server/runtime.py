"""The process's moving parts: stores (embedded or external), migrations, policies and the gate.

Embedded and external stores share one code path: embedded mode only starts local servers
and hands their DSN and URL to the same asyncpg/redis clients production uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from typing import Any

import asyncpg

from webhook import metrics
from webhook.engine.gate import Gate
from webhook.policy.loader import load_policy_file
from webhook.policy.provider import PolicyProvider
from webhook.retention.schedule import Periodic
from webhook.server import validate
from webhook.server.jobs import start_jobs
from webhook.settings import Settings
from webhook.store.cache import RedisCache
from webhook.store.history import HistoryStore
from webhook.store.locks import AdvisoryLocks, open_lock_pool
from webhook.store.migrate import migrate
from webhook.store.outbox import Outbox
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
    """Owns the stores, the gate and the background upkeep loop of one ``serve`` process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.postgres: PostgresStore | None = None
        self.jobs_pool: asyncpg.Pool | None = None
        self.lock_pool: asyncpg.Pool | None = None
        self.cache: RedisCache | None = None
        self.history: HistoryStore | None = None
        self.gate: Gate | None = None
        self.kube: Any = None  # webhook.kube.components.KubeComponents when a cluster is configured
        self.certificates: Any = None  # webhook.kube.certificates.CertificateRotator (self-managed TLS)
        self.migrated = False
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: list[Periodic] = []
        self.policies = PolicyProvider(
            file_policies=load_policy_file(settings.policy) if settings.policy else ())

    async def start(self) -> None:
        settings = self.settings
        assert settings.postgres_dsn, "a PostgreSQL DSN is required (or embedded mode)"
        # Two pools: admission queries (short timeout, no reset round trip) and batch work —
        # retention, aggregates, summaries — whose statements over a large history may take longer.
        pool = await create_pool(settings.postgres_dsn, min_size=0, reset_sessions=False)
        self.jobs_pool = await create_pool(settings.postgres_dsn, min_size=0, max_size=4, command_timeout=None)
        self.postgres = PostgresStore(pool, cluster_id=settings.cluster_id)
        await self._migrate()
        if settings.redis_url:
            self.cache = RedisCache.from_url(settings.redis_url, cluster_id=settings.cluster_id,
                                             horizon=CACHE_HORIZON)
        outbox = Outbox(redis=self.cache.client if self.cache else None, stream=f"sg:{settings.cluster_id}:outbox",
                        spool=settings.data_dir / "spool" / "outbox.jsonl")
        self.history = HistoryStore(postgres=self.postgres, cache=self.cache, outbox=outbox)
        self.lock_pool = await open_lock_pool(settings.postgres_dsn)  # lock waits never take decisions' connections
        self.history.locks = AdvisoryLocks(self.lock_pool, cluster_id=settings.cluster_id)
        from webhook.kube.components import KubeComponents

        self.kube = KubeComponents.create(settings, postgres=self.postgres, policies=self.policies,
                                          jobs_pool=self.jobs_pool)
        self.gate = Gate(
            **(self.kube.gate_hooks() if self.kube else {}),
            history=self.history,
            policies=self.policies,
            rules=settings.actor_rules(),
            excluded_namespaces=settings.excluded_namespaces,
            fail_closed=settings.fail_closed,
            on_decision=validate.observe,
        )
        if self.kube is not None:
            await self.kube.start()
            if settings.cert_secret:  # self-managed certificates: keep Secret, caBundle and files current
                from webhook.kube.certificates import CertificateRotator

                self.certificates = CertificateRotator.from_settings(settings, api_client=self.kube.client.api_client)
                self.certificates.start(interval=settings.cert_check_interval)
        await self.upkeep()
        self._tasks.append(asyncio.create_task(self._upkeep_loop(), name="store-upkeep"))
        self._jobs = start_jobs(settings, history=self.history, pool=self.jobs_pool)  # retention, aggregates

    async def _migrate(self) -> None:
        """Migrate at start; if PostgreSQL is down, start anyway (decisions use the cache) and retry."""
        assert self.settings.postgres_dsn
        try:
            await asyncio.wait_for(migrate(self.settings.postgres_dsn), 30)
            self.migrated = True
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.error("cannot migrate postgres yet, will retry: %s", exc)

    async def upkeep(self) -> dict[str, bool]:
        """Store health, migrations that could not run at start, and the outbox drain."""
        assert self.history is not None
        if not self.migrated:
            await self._migrate()
        checks = await self.history.check() if self.migrated else {"postgres": False}
        for store, up in checks.items():
            metrics.DEGRADED.labels(store=store).set(0 if up else 1)
        metrics.OUTBOX_DEPTH.set(await self.history.outbox_depth())
        return checks

    async def _upkeep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.upkeep_interval)
            try:
                await self.upkeep()
            except Exception:  # the loop must survive anything a store throws at it
                logger.exception("store upkeep failed")

    async def stop(self) -> None:
        for job in self._jobs:
            await job.stop()
        if self.certificates is not None:
            await self.certificates.stop()
        if self.kube is not None:
            await self.kube.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.cache is not None:
            await self.cache.close()
        if self.postgres is not None:
            await self.postgres.pool.close()
        if self.jobs_pool is not None:
            await self.jobs_pool.close()
        if self.lock_pool is not None:
            await self.lock_pool.close()

    def policies_synced(self) -> bool:
        """Without a cluster there is nothing to wait for; with one, the first list of policies."""
        return self.kube is None or self.kube.policies.synced

    def store_status(self) -> dict[str, bool]:
        if self.history is None:
            return {"postgres": False}
        status = {"postgres": self.history.postgres_up and self.migrated}
        if self.cache is not None:
            status["redis"] = self.history.redis_up
        return status
