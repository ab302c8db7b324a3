"""Confirm admitted changes from the cluster: watch the gated kinds, settle each proposal.

Admission runs before the API server stores anything, so the gate records what it admitted as
*proposed* (``webhook.store.confirmation``). This watcher sees what actually landed:

* a workload (Deployment, StatefulSet) whose resourceVersion moved past the proposal's oldObject
  and whose spec shows the proposal's values (replicas, moved resources, new images) confirms it.
  When several waiting proposals propose the same change — the API server re-runs admission, with
  a new uid, when it retries a patch that conflicted with a concurrent write — only the last is
  confirmed and the others are not-applied: one change counts once;
* a PipelineRun (tekton.dev/v1) created no earlier than the proposal confirms one CREATE of its
  name; a re-create answered 409 AlreadyExists finds no new object and confirms nothing;
* a proposal nothing confirmed within the confirmation window (another webhook denied it, the
  storage layer or a conversion refused it, or it was a forged review) is marked not-applied.

Matching is pure (``settle``); the informers and the sweep only feed it and write its verdicts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import json
import logging
from collections.abc import Sequence
from typing import Any

from webhook.actions.quantities import parse_quantity
from webhook.kube.client import KubeClient
from webhook.kube.informer import Informer
from webhook.store.confirmation import CONFIRMATION_WINDOW, ActionStatus, Operation, Proposed, Resolution, Subject
from webhook.store.errors import StoreError
from webhook.store.history import HistoryStore

logger = logging.getLogger(__name__)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Observed:
    """One object as the watch shows it, reduced to what matching needs."""

    kind: str
    namespace: str
    name: str
    uid: str
    version: str
    created: datetime.datetime | None
    spec: dict[str, Any]

    @classmethod
    def of(cls, kind: str, obj: dict[str, Any]) -> Observed | None:
        meta = obj.get("metadata") or {}
        if not meta.get("name"):
            return None
        created = None
        if meta.get("creationTimestamp"):
            try:
                created = datetime.datetime.fromisoformat(str(meta["creationTimestamp"]).replace("Z", "+00:00"))
            except ValueError:
                created = None
        return cls(kind=kind, namespace=meta.get("namespace") or "", name=meta["name"], uid=meta.get("uid") or "",
                   version=str(meta.get("resourceVersion") or ""), created=created, spec=obj.get("spec") or {})


def settle(pending: Sequence[Proposed], observed: Observed) -> list[Resolution]:
    """What one observed object state says about the proposals waiting on it (pure)."""
    if observed.kind == "PipelineRun":
        return _settle_create(pending, observed)
    landed = [p for p in pending if p.operation is Operation.UPDATE and _newer(observed.version, p.old_version)
              and satisfied(p.change, observed.spec)]
    by_change: dict[str, list[Proposed]] = {}
    for proposal in landed:
        by_change.setdefault(json.dumps(proposal.change, sort_keys=True), []).append(proposal)
    resolutions: list[Resolution] = []
    for same in by_change.values():
        same.sort(key=lambda p: (p.at, p.uid))
        *retried, confirmed = same
        resolutions.append(Resolution(uid=confirmed.uid, status=ActionStatus.CONFIRMED,
                                      reason=f"seen in the cluster at resourceVersion {observed.version}",
                                      object_uid=observed.uid, observed_version=observed.version))
        resolutions.extend(
            Resolution(uid=p.uid, status=ActionStatus.NOT_APPLIED,
                       reason=f"the same change landed once, under review {confirmed.uid} (a retry on conflict)",
                       observed_version=observed.version)
            for p in retried)
    return resolutions


def _settle_create(pending: Sequence[Proposed], observed: Observed) -> list[Resolution]:
    if observed.created is None:
        return []
    # creationTimestamp has whole seconds: a creation proposed within the second before counts.
    creates = [p for p in pending if p.operation is Operation.CREATE and p.subject.matches(observed.name)
               and p.at.replace(microsecond=0) <= observed.created]
    if not creates:
        return []
    first = min(creates, key=lambda p: (p.at, p.uid))
    return [Resolution(uid=first.uid, status=ActionStatus.CONFIRMED,
                       reason=f"created as {observed.namespace}/{observed.name} (uid {observed.uid})",
                       object_uid=observed.uid, observed_version=observed.version)]


def _newer(version: str, old: str | None) -> bool:
    """Whether the object moved past the proposal's oldObject; resourceVersions are opaque, but
    etcd's are integers, which lets a stale watch event be told from a newer one."""
    if not old:
        return True
    if version.isdigit() and old.isdigit():
        return int(version) > int(old)
    return version != old


def satisfied(change: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether a workload spec shows every value the change sets."""
    if "replicas" in change and spec.get("replicas", 1) != change["replicas"]:
        return False
    containers = {c.get("name"): c for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
                  if isinstance(c, dict)}
    for dimension, value in (change.get("resources") or {}).items():
        container, resource, field = dimension.rsplit("/", 2)
        found = (((containers.get(container) or {}).get("resources") or {}).get(field) or {}).get(resource)
        quantity = parse_quantity(found) if found is not None else None
        if quantity is None or abs(quantity - float(value)) > 1e-9 * max(1.0, abs(float(value))):
            return False
    for container, image in (change.get("images") or {}).items():
        if (containers.get(container) or {}).get("image") != image:
            return False
    return bool(change)


#: The gated kinds whose changes are confirmed: kind -> (API group, plural), all at version v1.
WATCHED = {"Deployment": ("apps", "deployments"), "StatefulSet": ("apps", "statefulsets"),
           "PipelineRun": ("tekton.dev", "pipelineruns")}


class ConfirmationWatch:
    """Informers on Deployments, StatefulSets and PipelineRuns, plus the sweep of expired proposals.

    Every replica runs one; settling is idempotent (a settled proposal never changes again), so
    replicas seeing the same events agree.
    """

    def __init__(self, client: KubeClient, *, history: HistoryStore,
                 window: datetime.timedelta = CONFIRMATION_WINDOW, sweep_every: float = 1.0) -> None:
        self.client = client
        self.history = history
        self.window = window
        self.sweep_every = sweep_every
        # The generic (custom objects) API lists built-in kinds as plain dicts too, as the informer wants.
        self.informers = {
            kind: Informer(client, name=f"confirm-{plural}",
                           list_fn=functools.partial(client.custom.list_cluster_custom_object, group, "v1", plural),
                           on_sync=self._sync(kind), on_event=self._event(kind))
            for kind, (group, plural) in WATCHED.items()}
        self._generations: dict[str, Any] = {}  # object uid -> last generation settled against
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.history.confirming = True
        for informer in self.informers.values():
            informer.start()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="confirm-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
        for informer in self.informers.values():
            await informer.stop()

    def _sync(self, kind: str):  # noqa: ANN202 - a callback factory
        async def on_sync(items: list[dict[str, Any]]) -> None:
            for item in items:
                await self.observe(kind, item)
        return on_sync

    def _event(self, kind: str):  # noqa: ANN202 - a callback factory
        async def on_event(event_type: str, obj: dict[str, Any]) -> None:
            if event_type == "DELETED":
                self._generations.pop((obj.get("metadata") or {}).get("uid") or "", None)
            # A PipelineRun confirms a creation once; its status updates (many) say nothing new.
            elif event_type == "ADDED" or (event_type == "MODIFIED" and kind != "PipelineRun"):
                await self.observe(kind, obj)
        return on_event

    async def observe(self, kind: str, obj: dict[str, Any]) -> None:
        observed = Observed.of(kind, obj)
        if observed is None:
            return
        # A workload's spec (all a proposal sets) moved only if its generation did: status writes
        # by its controller need no look at the store.
        generation = (obj.get("metadata") or {}).get("generation")
        if kind != "PipelineRun" and generation is not None and observed.uid:
            if self._generations.get(observed.uid) == generation:
                return
            self._generations[observed.uid] = generation
        try:
            pending = await self.history.pending(Subject(kind=kind, namespace=observed.namespace,
                                                         name=observed.name))
            if pending:
                await self.history.resolve(settle(pending, observed), now=utcnow())
        except StoreError as exc:  # the sweep settles nothing while PostgreSQL is away either
            logger.warning("cannot confirm changes to %s %s/%s now: %s", kind, observed.namespace, observed.name, exc)

    async def sweep(self, *, now: datetime.datetime | None = None) -> int:
        """Mark proposals the window has passed unseen as not-applied; returns how many."""
        now = now or utcnow()
        # Only where the watch has listed: a kind it cannot see (no Tekton CRD, no RBAC) keeps its
        # proposals waiting, and counting, rather than forgetting changes it could not check.
        kinds = [kind for kind, informer in self.informers.items() if informer.synced.is_set()]
        if not kinds:
            return 0
        expired = await self.history.expired_proposals(before=now - self.window, kinds=kinds)
        seconds = int(self.window.total_seconds())
        return await self.history.resolve(
            [Resolution(uid=uid, status=ActionStatus.NOT_APPLIED,
                        reason=f"never seen in the cluster within {seconds}s of its admission")
             for uid in expired], now=now)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                await self.sweep()
            except StoreError as exc:
                logger.debug("confirmation sweep skipped: %s", exc)
            except Exception:  # noqa: BLE001 - the sweep must outlive one bad round
                logger.exception("confirmation sweep failed")
