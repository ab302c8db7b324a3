"""The process's moving parts: stores (embedded or external), migrations, policies and the gate.

Embedded and external stores share one code path: embedded mode only starts local servers
and hands their DSN and URL to the same asyncpg/redis clients production uses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import enum
import fcntl
import itertools
import logging
import os
import pathlib
import time
from collections.abc import Awaitable
from typing import Any

import asyncpg

from webhook import metrics
from webhook.engine.gate import Gate
from webhook.policy.loader import load_policy_file
from webhook.policy.provider import PolicyProvider
from webhook.server import validate
from webhook.server.jobs import job_services
from webhook.services import GuardedTask, Health, ServiceGroup, bounded
from webhook.settings import Settings
from webhook.store.cache import RedisCache
from webhook.store.history import HistoryStore
from webhook.store.locks import AdvisoryLocks, open_lock_pool
from webhook.store.migrate import migrate
from webhook.store.outbox import Outbox
from webhook.store.postgres import PostgresStore, create_pool

logger = logging.getLogger(__name__)

CACHE_HORIZON = datetime.timedelta(hours=24)


class StoreRole(enum.Enum):
    """How a process relates to the embedded stores of its data dir."""

    EXTERNAL = "external"  # DSN and URL given: nothing embedded
    OWNER = "owner"        # started them, restarts them when they die, stops them at exit
    ATTACHED = "attached"  # uses the stores another live process owns; never stops or restarts them


#: Seconds ``serve`` waits for another process (a short CLI command) to give the data dir up.
CLAIM_WAIT_SECONDS = 30.0
#: Seconds a command waits for the owner of the data dir to publish where its stores listen.
OWNER_WAIT_SECONDS = 90.0


@dataclasses.dataclass
class EmbeddedStores:
    """Local PostgreSQL and Redis under the data dir, when no DSN/URL is configured.

    The first process on a data dir owns its stores (see
    :class:`~webhook.store.embedded.DataDirClaim`); a ``serve`` owner also keeps them alive. Every
    later command on the same data dir attaches: it connects to the owner's stores and leaves
    them alone, so ``safety-gate history`` beside a serving gate no longer takes its PostgreSQL
    away.
    """

    role: StoreRole = StoreRole.EXTERNAL
    postgres: Any = None
    redis: Any = None
    owner: Any = None       # webhook.store.embedded.StoreOwner: who we attached to
    claim: Any = None       # webhook.store.embedded.DataDirClaim, held by an owner
    supervisor: Any = None  # webhook.store.embedded.StoreSupervisor of an owner
    postgres_dsn: str | None = None  # where the embedded (owned or attached) PostgreSQL listens
    redis_url: str | None = None

    def completed(self, settings: Settings) -> Settings:
        """``settings`` with the addresses of the embedded stores filled in (a new, frozen copy)."""
        changes = {key: value for key, value in (("postgres_dsn", self.postgres_dsn),
                                                 ("redis_url", self.redis_url)) if value}
        return settings.with_values(**changes) if changes else settings

    @classmethod
    def start(cls, settings: Settings, *, redis: bool = True, exclusive: bool = False) -> EmbeddedStores:
        """Start, or attach to, the embedded stores ``settings`` lacks a DSN/URL for.

        ``exclusive`` (``serve``): this process must own them; waits up to ``CLAIM_WAIT_SECONDS``
        for another owner to leave, then fails naming it.
        """
        need_postgres = not settings.stores.postgres_dsn
        need_redis = redis and not settings.stores.redis_url
        if not (need_postgres or need_redis):
            return cls()
        from webhook.store.embedded import DataDirClaim, EmbeddedServerError

        claim = DataDirClaim(data_dir=settings.stores.data_dir.resolve())
        if exclusive:
            deadline = time.monotonic() + CLAIM_WAIT_SECONDS
            while not claim.try_claim():
                if time.monotonic() > deadline:
                    owner = claim.owner()
                    holder = owner.describe() if owner is not None else "another process"
                    raise EmbeddedServerError(
                        f"the embedded stores in {claim.data_dir} belong to {holder}; stop it or give this "
                        "gate its own --data-dir")
                time.sleep(0.2)
        elif not claim.try_claim():
            owner = claim.wait_for_owner(timeout=OWNER_WAIT_SECONDS)
            if owner is not None:
                return cls._attach(settings, owner=owner, postgres=need_postgres, redis=need_redis)
        stores = cls(role=StoreRole.OWNER, claim=claim)
        try:
            stores._start_owned(settings, postgres=need_postgres, redis=need_redis)
        except BaseException:
            stores.stop()
            raise
        return stores

    @classmethod
    def _attach(cls, settings: Settings, *, owner: Any, postgres: bool, redis: bool) -> EmbeddedStores:
        from webhook.store.embedded import EmbeddedServerError

        for needed, address, what, flag in ((postgres, owner.postgres_dsn, "PostgreSQL", "--postgres-dsn"),
                                             (redis, owner.redis_url, "Redis", "--redis-url")):
            if needed and not address:
                raise EmbeddedServerError(
                    f"{owner.describe()} uses the data dir {settings.stores.data_dir} with an external {what}; "
                    f"pass {flag} too")
        logger.info("using the embedded stores of %s in %s", owner.describe(), settings.stores.data_dir)
        return cls(role=StoreRole.ATTACHED, owner=owner, postgres_dsn=owner.postgres_dsn if postgres else None,
                   redis_url=owner.redis_url if redis else None)

    def _start_owned(self, settings: Settings, *, postgres: bool, redis: bool) -> None:
        from webhook.store.embedded import EmbeddedPostgres, EmbeddedRedis, StoreSupervisor

        data_dir = settings.stores.data_dir.resolve()
        if postgres:
            self.postgres = EmbeddedPostgres(data_dir=data_dir / "postgres")
            self.postgres.start()
            self.postgres_dsn = self.postgres.dsn
        if redis:
            self.redis = EmbeddedRedis(data_dir=data_dir / "redis")
            self.redis.start()
            self.redis_url = self.redis.url
        self.claim.publish(postgres_dsn=self.postgres.dsn if self.postgres else None,
                           redis_url=self.redis.url if self.redis else None)
        self.supervisor = StoreSupervisor(servers=[s for s in (self.postgres, self.redis) if s is not None])
        self.supervisor.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """An owner stops its supervisor, then its servers (each within ``timeout``), then leaves the
        data dir; an attached or external process has nothing to stop."""
        if self.supervisor is not None:
            self.supervisor.stop(timeout=timeout)
            self.supervisor = None
        servers = [server for server in (self.redis, self.postgres) if server is not None]
        if servers:
            # in parallel: a shutdown waits for the slower of the two, not their sum
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(servers)) as pool:
                for future in [pool.submit(server.stop, timeout=timeout) for server in servers]:
                    future.result()
        if self.claim is not None:
            self.claim.release()
            self.claim = None


@dataclasses.dataclass(frozen=True, slots=True)
class Worker:
    """Which serving process of the pod this is: ``serve --workers N`` runs N, ``index`` 0 to N-1.

    Every worker is a full gate, like a replica: its own pools, HistoryStore and outbox, with the
    locks in Redis and PostgreSQL serializing decisions across processes exactly as across
    replicas. What is per pod rather than per gate — work done once per pod, or work that would
    only be doubled (docs/architecture.md, "Workers") — runs in worker 0 alone.
    """

    index: int = 0
    count: int = 1  # 1: the single ``serve`` process, which is worker 0 of one

    @property
    def runs_pod_jobs(self) -> bool:
        """Retention, effectiveness, certificate rotation, summaries, pattern status, confirmations,
        approval sync and assessments: once per pod (they are behind leader locks or paced anyway)."""
        return self.index == 0

    @property
    def spool_dir(self) -> pathlib.PurePath:
        """Relative to the data dir. Worker 0 keeps the single process's spool; each other worker
        its own, which the worker restarted in its place takes over and drains (a spool named by
        pid would be left behind by a dead worker)."""
        return pathlib.PurePath("spool") if self.index == 0 else pathlib.PurePath("spool", f"worker-{self.index}")


SINGLE_PROCESS = Worker()


def load_policies(settings: Settings) -> PolicyProvider:
    """The file's OscillationPatterns over the defaults; raises ``PolicyError`` naming the problem."""
    return PolicyProvider(file_policies=load_policy_file(settings.policy) if settings.policy else ())


class Runtime:
    """Owns the stores, the gate and the background upkeep loop of one ``serve`` process."""

    def __init__(self, settings: Settings, *, policies: PolicyProvider | None = None,
                 worker: Worker = SINGLE_PROCESS) -> None:
        """``policies``: already loaded from ``settings.policy`` (``serve`` loads them before it
        starts the stores, to report a bad file at once). ``worker``: which of the pod's serving
        processes this is (one, unless ``serve --workers``)."""
        self.settings = settings
        self.worker = worker
        self.postgres: PostgresStore | None = None
        self.jobs_pool: asyncpg.Pool | None = None
        self.lock_pool: asyncpg.Pool | None = None
        self.cache: RedisCache | None = None
        self.history: HistoryStore | None = None
        self.gate: Gate | None = None
        self.kube: Any = None  # webhook.kube.components.KubeComponents when a cluster is configured
        self.certificates: Any = None  # webhook.kube.certificates.CertificateRotator (self-managed TLS)
        self.migrated = False
        # Every background loop of the process (DESIGN §7): started in ``start``, stopped together.
        self.services = ServiceGroup()
        self._spool_lock: int | None = None
        self.policies = policies if policies is not None else load_policies(settings)

    async def start(self) -> None:
        settings = self.settings
        assert settings.stores.postgres_dsn, "a PostgreSQL DSN is required (or embedded mode)"
        # Two pools: admission queries (short timeout, no reset round trip) and batch work —
        # retention, aggregates, summaries — whose statements over a large history may take longer.
        pool = await create_pool(settings.stores.postgres_dsn, min_size=0, reset_sessions=False)
        self.jobs_pool = await create_pool(settings.stores.postgres_dsn, min_size=0, max_size=4, command_timeout=None)
        self.postgres = PostgresStore(pool, cluster_id=settings.stores.cluster_id)
        await self._migrate()
        if settings.stores.redis_url:
            self.cache = RedisCache.from_url(settings.stores.redis_url, cluster_id=settings.stores.cluster_id,
                                             horizon=CACHE_HORIZON)
        spool, self._spool_lock = claim_spool(settings.stores.data_dir / self.worker.spool_dir)
        outbox = Outbox(redis=self.cache.client if self.cache else None, stream=settings.stores.outbox_stream,
                        spool=spool)
        self.history = HistoryStore(postgres=self.postgres, cache=self.cache, outbox=outbox)
        self.lock_pool = await open_lock_pool(settings.stores.postgres_dsn)  # lock waits never take decisions' connections
        self.history.locks = AdvisoryLocks(self.lock_pool, cluster_id=settings.stores.cluster_id)
        from webhook.kube.components import KubeComponents

        self.kube = KubeComponents.create(settings, postgres=self.postgres, policies=self.policies,
                                          jobs_pool=self.jobs_pool, history=self.history)
        self.gate = Gate(
            **(self.kube.gate_hooks() if self.kube else {}),
            history=self.history,
            policies=self.policies,
            rules=settings.actor_rules(),
            excluded_namespaces=settings.kube.excluded_namespaces,
            cluster_namespace=settings.kube.namespace,
            fail_closed=settings.stores.fail_closed,
            on_decision=validate.observe,
        )
        pod_jobs = self.worker.runs_pod_jobs
        if self.kube is not None:
            for service in self.kube.services(pod_jobs=pod_jobs):
                self.services.add(service)
            # Self-managed certificates: keep Secret, caBundle and files current (once per pod: the
            # other workers reload the files it writes, as they reload any renewed file).
            if settings.certificates.secret and pod_jobs:
                from webhook.kube.certificates import CertificateRotator

                self.certificates = CertificateRotator.from_settings(settings, api_client=self.kube.client.api_client)
                interval = settings.certificates.check_interval
                self.services.add(GuardedTask(name="certificate-rotation", step=self.certificates.sync_async,
                                              interval=interval, first_delay=0, retry_interval=min(interval, 5.0),
                                              on_stopped=self.certificates.stop))
        await self.upkeep()
        self.services.add(GuardedTask(name="store-upkeep", step=self.upkeep, interval=settings.stores.upkeep_interval))
        for job in job_services(settings, history=self.history, pool=self.jobs_pool) if pod_jobs else ():
            self.services.add(job)  # retention, aggregates
        self.services.start()

    async def _migrate(self) -> None:
        """Migrate at start; if PostgreSQL is down, start anyway (decisions use the cache) and retry."""
        assert self.settings.stores.postgres_dsn
        try:
            await asyncio.wait_for(migrate(self.settings.stores.postgres_dsn), 30)
            self.migrated = True
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
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

    async def stop(self) -> None:
        """Stop every service and close every connection, each step within its bound.

        Called by the lifespan after uvicorn answered the in-flight reviews: the services (store
        upkeep, jobs, certificates, the Kubernetes watchers and writers) stop together, then the
        Kubernetes client and the store clients: steps of at most ``STOP_STEP_SECONDS`` each.
        Nothing here waits without a bound, so SIGTERM ends within the bound documented in the user guide.
        """
        await self.services.stop(timeout=STOP_STEP_SECONDS)
        if self.kube is not None:
            self.kube.client.close()
        await asyncio.gather(*(client for client in (
            _bounded(self.cache.close(), what="the Redis client") if self.cache is not None else None,
            _close_pool(self.postgres.pool if self.postgres is not None else None),
            _close_pool(self.jobs_pool),
            _close_pool(self.lock_pool),
        ) if client is not None))
        if self._spool_lock is not None:
            os.close(self._spool_lock)
            self._spool_lock = None

    def service_health(self) -> dict[str, Health]:
        return self.services.health()

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


#: Seconds each shutdown step may take (the loops together, the Kubernetes edge, each client).
STOP_STEP_SECONDS = 3.0


async def _bounded(step: Awaitable[object], *, what: str, timeout: float = STOP_STEP_SECONDS) -> bool:
    return await bounded(step, what=f"stopping {what}", timeout=timeout)


async def _close_pool(pool: asyncpg.Pool | None) -> None:
    """Close ``pool`` gracefully within the step bound, else cut its connections."""
    if pool is not None and not await _bounded(pool.close(), what="a PostgreSQL pool"):
        pool.terminate()


_private_spools = itertools.count(1)


def claim_spool(directory: pathlib.Path) -> tuple[pathlib.Path, int | None]:
    """The outbox spool this process may append to and drain, and the lock that makes it ours.

    The spool's drain rewrites the file with what is left: two processes draining one file (a
    ``safety-gate replay`` beside a serving gate on the same data dir) could drop a line the other
    just appended. The first process takes ``outbox.jsonl``; any other writes a spool of its own.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / "outbox.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # a read-only data dir: the spool fails loudly when it is first needed
        logger.warning("cannot lock the outbox spool in %s: %s", directory, exc)
        return directory / "outbox.jsonl", None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        private = directory / f"outbox-{os.getpid()}-{next(_private_spools)}.jsonl"
        logger.info("another process drains %s; spooling to %s", directory / "outbox.jsonl", private)
        return private, None
    return directory / "outbox.jsonl", fd
