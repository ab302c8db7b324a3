"""Watches ActionHistorySummaries for the per-workload settings people set on them.

``spec.analysisConfig`` goes to the policy provider (detection reads it through policy
resolution, at the next request); ``spec.retentionPolicy`` goes to ``action_histories``
(retention reads it at its next run). What the settings mean and how they are validated is in
:mod:`webhook.policy.target_settings`. A summary whose settings are invalid keeps the valid
ones; the rest are logged once per change, by name.

Every replica watches and writes the same values: the UPDATE changes a row only when the value
differs, so replicas agree without a leader.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import asyncpg

from webhook.actions.model import TargetRef
from webhook.kube.client import GROUP, VERSION, KubeClient
from webhook.kube.informer import Informer
from webhook.policy import target_settings as ts
from webhook.policy.provider import PolicyProvider
from webhook.retention.policy import DEFAULT_MAX_ACTIONS, DEFAULT_MAX_AGE, DEFAULT_STRATEGY
from webhook.store.target_settings import StoredRetention, store_retention
from webhook.summaries import targets as ahs

logger = logging.getLogger(__name__)


def target_of(obj: dict[str, Any]) -> TargetRef | None:
    """The workload a summary is about, from ``spec.targetRef`` (the gate wrote it)."""
    ref = (obj.get("spec") or {}).get("targetRef") or {}
    kind, name = ref.get("kind"), ref.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        return None
    namespace = ref.get("namespace")
    return TargetRef(namespace=namespace if isinstance(namespace, str) else "", kind=kind, name=name, api_version=str(ref.get("apiVersion") or ""))


def stored(target: TargetRef, retention: ts.RetentionSettings) -> StoredRetention:
    return StoredRetention(
        target=target, max_actions=retention.max_actions or DEFAULT_MAX_ACTIONS,
        max_age_days=retention.max_age_days or DEFAULT_MAX_AGE.days,
        compaction=retention.compaction or DEFAULT_STRATEGY.value)


class TargetSettingsWatcher:
    def __init__(self, client: KubeClient, *, provider: PolicyProvider, pool: asyncpg.Pool, cluster_id: str) -> None:
        self.provider = provider
        self.pool = pool
        self.cluster_id = cluster_id
        self._settings: dict[str, tuple[TargetRef, ts.TargetSettings]] = {}   # by summary namespace/name
        self._reported: dict[str, tuple[str, ...]] = {}
        self._retry: asyncio.Task[None] | None = None
        self.retry_every = 30.0
        self.informer = Informer(
            client, name="target-settings",
            list_fn=functools.partial(client.custom.list_cluster_custom_object, GROUP, VERSION, ahs.PLURAL),
            on_sync=self._on_sync, on_event=self._on_event)

    def start(self) -> None:
        self.informer.start()

    async def stop(self) -> None:
        await self.informer.stop()
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)

    async def _on_sync(self, items: list[dict[str, Any]]) -> None:
        before = dict(self._settings)
        self._settings = {}
        for obj in items:
            self._read(obj)
        await self._changed(before)

    async def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        before = dict(self._settings)
        if kind == "DELETED":
            self._settings.pop(_key(obj), None)
        elif kind in ("ADDED", "MODIFIED"):
            self._read(obj)
        else:
            return
        await self._changed(before)

    def _read(self, obj: dict[str, Any]) -> None:
        key, target = _key(obj), target_of(obj)
        spec = obj.get("spec") or {}
        if target is None or not ("retentionPolicy" in spec or "analysisConfig" in spec):
            self._settings.pop(key, None)
            return
        settings = ts.parse(spec)
        if settings.problems and self._reported.get(key) != settings.problems:
            logger.error("ActionHistorySummary %s: settings ignored: %s", key, "; ".join(settings.problems))
        self._reported[key] = settings.problems
        self._settings[key] = (target, settings)

    async def _changed(self, before: dict[str, tuple[TargetRef, ts.TargetSettings]]) -> None:
        if before == self._settings:
            return
        self.provider.set_target_settings({t.key: s.analysis for t, s in self._settings.values()})
        rows = [stored(t, s.retention) for t, s in self._settings.values()]
        gone = {t.key for t, _ in before.values()} - {t.key for t, _ in self._settings.values()}
        rows += [stored(t, ts.RetentionSettings()) for t, _ in before.values() if t.key in gone]
        if not await self._store(rows) and self._retry is None:
            self._retry = asyncio.create_task(self._store_until_done(), name="target-settings-retry")

    async def _store(self, rows: list[StoredRetention]) -> bool:
        try:
            changed = await store_retention(self.pool, cluster_id=self.cluster_id, rows=rows)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("per-target retention settings not stored now (PostgreSQL: %s); retrying", exc)
            return False
        if changed:
            logger.info("per-target retention settings stored for %d target(s)", changed)
        return True

    async def _store_until_done(self) -> None:
        """PostgreSQL was away: write the current settings (all of them) once it is back."""
        try:
            while True:
                await asyncio.sleep(self.retry_every)
                if await self._store([stored(t, s.retention) for t, s in self._settings.values()]):
                    return
        finally:
            self._retry = None


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
