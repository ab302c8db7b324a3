"""All Kubernetes components of one ``serve`` process, started and stopped together by ``Runtime``.

``KubeComponents.create`` returns None without a cluster (no ``--kubeconfig``, not in a
cluster): the gate then runs with no Kubernetes code at all. ``gate_hooks()`` is what the Gate
takes from here — the alert writer as ``on_remembered`` and the two lookups. The summariser
(unless ``--no-summaries``) keeps ActionHistorySummary / EffectivenessMetric objects current.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import asyncpg

from webhook.effectiveness.service import EffectivenessService
from webhook.kube import pattern_status, target_settings
from webhook.kube.alerts import AlertWriter
from webhook.kube.approvals import ApprovalSync
from webhook.kube.client import KubeClient
from webhook.kube.confirmations import ConfirmationWatch
from webhook.kube.kubernaut import AssessmentWatch, KubernautLookups
from webhook.kube.lookups import Lookups
from webhook.kube.owners import PodOwners
from webhook.kube.policies import PolicyWatcher
from webhook.kube.summaries import Summariser
from webhook.policy.provider import PolicyProvider
from webhook.services import Loop, Service, ServiceGroup
from webhook.settings import Settings
from webhook.store.history import HistoryStore
from webhook.store.postgres import PostgresStore

logger = logging.getLogger(__name__)


class KubeComponents:
    def __init__(self, client: KubeClient, *, settings: Settings, postgres: PostgresStore,
                 policies: PolicyProvider, jobs_pool: asyncpg.Pool | None = None,
                 history: HistoryStore | None = None) -> None:
        self.client = client
        self.alerts = AlertWriter(client, cluster_id=settings.cluster_id, queue_size=settings.alert_queue_size,
                                  sweep_every=settings.alert_sweep_seconds,
                                  stale_after=datetime.timedelta(hours=settings.alert_stale_hours))
        self.approvals = ApprovalSync(client, postgres=postgres)
        self.policies = PolicyWatcher(client, provider=policies)
        self.lookups = Lookups(client)
        self.owners = PodOwners(client)
        self.kubernaut = KubernautLookups(client)
        self.assessments: AssessmentWatch | None = None
        if history is not None:  # Kubernaut's EffectivenessAssessments, where its CRD exists
            self.assessments = AssessmentWatch(
                client, effectiveness=EffectivenessService(history=history, pool=jobs_pool))
        # Truthful history: admitted changes are confirmed from the cluster (webhook.kube.confirmations).
        self.confirmations = ConfirmationWatch(client, history=history) if history is not None else None
        self._services = ServiceGroup()
        self.summaries: Summariser | None = None
        if settings.summaries:
            self.summaries = Summariser(
                client, pool=jobs_pool or postgres.pool, cluster_id=settings.cluster_id, gate_namespace=settings.namespace,
                interval=settings.summary_interval, writes_per_second=settings.summary_writes_per_second,
                burst=settings.summary_burst, settle=settings.summary_settle_seconds,
                retention=datetime.timedelta(days=settings.retention_max_age_days),
                resync_interval=settings.summary_resync_seconds)
        self.pattern_status: pattern_status.PatternStatusWriter | None = None
        self.target_settings: target_settings.TargetSettingsWatcher | None = None
        if settings.summaries:  # OscillationPattern statistics: every 6 summary passes (60s by default)
            self.pattern_status = pattern_status.PatternStatusWriter(
                client, pool=jobs_pool or postgres.pool, cluster_id=settings.cluster_id,
                interval=6 * settings.summary_interval)
            # Per-workload retentionPolicy / analysisConfig, set by people on the summaries.
            self.target_settings = target_settings.TargetSettingsWatcher(
                client, provider=policies, pool=jobs_pool or postgres.pool, cluster_id=settings.cluster_id)

    @classmethod
    def create(cls, settings: Settings, *, postgres: PostgresStore, policies: PolicyProvider,
               jobs_pool: asyncpg.Pool | None = None, history: HistoryStore | None = None) -> KubeComponents | None:
        client = KubeClient.from_settings(settings)
        if client is None:
            logger.info("no cluster configured: detections stay in PostgreSQL, policies from file and defaults")
            return None
        logger.info("cluster configured (%s): writing OscillationAlerts, watching OscillationPatterns",
                    settings.kubeconfig or "in-cluster")
        return cls(client, settings=settings, postgres=postgres, policies=policies, jobs_pool=jobs_pool,
                   history=history)

    def gate_hooks(self) -> dict[str, Any]:
        return {"on_remembered": self.alerts.submit, "labels_for": self.lookups.labels_for,
                "hpa_for": self.lookups.hpa_for, "context_for": self.kubernaut.context_for,
                "eviction_for": self.owners.resolve}

    def services(self, *, pod_jobs: bool = True) -> list[Service]:
        """The background loops, as services the runtime starts and stops with its others; none
        waits for the API server to start (they retry on their own).

        ``pod_jobs`` False (a worker other than 0 of ``serve --workers``): only what this process's
        own gate needs — the policies and per-workload settings it decides with, and the alert
        writer its decisions feed. What writes shared state from the cluster (approvals,
        confirmations, assessments, summaries, pattern status) runs once per pod, in worker 0.
        """
        found: list[Service] = [
            Loop(name="policy-watcher", start=self.policies.start, stop=self.policies.stop),
            Loop(name="alert-writer", start=self.alerts.start, stop=self.alerts.stop),
        ]
        if self.target_settings is not None:
            found.append(Loop(name="target-settings", start=self.target_settings.start,
                              stop=self.target_settings.stop))
        if not pod_jobs:
            return found
        found.append(Loop(name="approval-sync", start=self.approvals.start, stop=self.approvals.stop))
        if self.confirmations is not None:
            found.append(Loop(name="confirmations", start=self.confirmations.start, stop=self.confirmations.stop))
        if self.assessments is not None:
            found.append(Loop(name="kubernaut-assessments", start=self.assessments.start, stop=self.assessments.stop))
        if self.summaries is not None:
            found.append(Loop(name="summariser", start=self.summaries.start, stop=self.summaries.stop))
        if self.pattern_status is not None:
            found.append(Loop(name="pattern-status", start=self.pattern_status.start, stop=self.pattern_status.stop))
        return found

    async def start(self) -> None:
        """Start the background tasks without a runtime (tests, tools); the runtime uses ``services``."""
        self._services = ServiceGroup(self.services())
        self._services.start()

    async def stop(self) -> None:
        await self._services.stop()
        self.client.close()
