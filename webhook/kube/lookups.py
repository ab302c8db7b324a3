"""What the admission request does not say but a decision may need: workload labels and the HPA.

* ``labels_for(target)``: the ``scale`` subresource carries an ``autoscaling/v1 Scale`` without
  labels, so a policy scoped by ``resourceScope.labels`` needs the Deployment's/StatefulSet's
  own labels.
* ``hpa_for(target)``: the controller-fight message names the HorizontalPodAutoscaler whose
  bounds should change instead (``"<namespace>/<name>"``).

Both sit on the decision path, so both are cached (``ttl``) and bounded: a cache miss waits at
most ``budget`` seconds for the API server and otherwise answers None (the lookup keeps running
and fills the cache for the next request). Errors answer None and are cached briefly, so an
unreachable API server costs each target one short wait, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from webhook.actions.model import TargetRef
from webhook.kube.client import KubeClient

logger = logging.getLogger(__name__)

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """Values by key with a time to live; one lookup in flight per key; at most ``max_entries``
    values (the oldest go first), because keys can come from request content."""

    def __init__(self, *, ttl: float, error_ttl: float, budget: float,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000,
                 none_ttl: float | None = None) -> None:
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.none_ttl = ttl if none_ttl is None else none_ttl
        self.budget = budget
        self.clock = clock
        self.max_entries = max_entries
        self._values: dict[str, tuple[float, V | None]] = {}
        self._inflight: dict[str, asyncio.Task[V | None]] = {}

    def __len__(self) -> int:
        return len(self._values)

    def _store(self, key: str, value: V | None, ttl: float) -> None:
        self._values.pop(key, None)
        while len(self._values) >= self.max_entries:
            self._values.pop(next(iter(self._values)))
        self._values[key] = (self.clock() + ttl, value)

    async def get(self, key: str, load: Callable[[], Awaitable[V | None]]) -> V | None:
        cached = self._values.get(key)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, load))
            self._inflight[key] = task
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.budget)
        except TimeoutError:
            logger.info("lookup of %s is slow; deciding without it", key)
            return None

    async def _load(self, key: str, load: Callable[[], Awaitable[V | None]]) -> V | None:
        try:
            value = await load()
            self._store(key, value, self.ttl if value is not None else self.none_ttl)
            return value
        except Exception as exc:  # noqa: BLE001 - None is the documented answer on error
            logger.warning("lookup of %s failed: %s", key, getattr(exc, "reason", None) or exc)
            self._store(key, None, self.error_ttl)
            return None
        finally:
            self._inflight.pop(key, None)


class Lookups:
    def __init__(self, client: KubeClient, *, ttl: float = 30.0, budget: float = 1.0,
                 request_timeout: float = 2.0) -> None:
        self.client = client
        self.request_timeout = request_timeout
        self._labels: BoundedCache[dict[str, str]] = BoundedCache(ttl=ttl, error_ttl=5.0, budget=budget)
        self._hpas: BoundedCache[dict[tuple[str, str], str]] = BoundedCache(ttl=ttl, error_ttl=5.0,
                                                                            budget=budget)

    async def labels_for(self, target: TargetRef) -> dict[str, str] | None:
        """The workload's labels, or None (unknown kind, not found, error, too slow)."""
        apps = self.client.apps
        read = {"Deployment": apps.read_namespaced_deployment,
                "StatefulSet": apps.read_namespaced_stateful_set}.get(target.kind)
        if read is None:
            return None

        async def load() -> dict[str, str]:
            obj: Any = await self.client.call(read, target.name, target.namespace, timeout=self.request_timeout)
            return dict(obj.metadata.labels or {})

        return await self._labels.get(f"labels:{target.key}", load)

    async def hpa_for(self, target: TargetRef) -> str | None:
        """``"<namespace>/<name>"`` of the HPA whose ``scaleTargetRef`` is the target, or None."""

        async def load() -> dict[tuple[str, str], str]:
            listing: Any = await self.client.call(
                self.client.autoscaling.list_namespaced_horizontal_pod_autoscaler, target.namespace,
                timeout=self.request_timeout)
            found: dict[tuple[str, str], str] = {}
            for hpa in listing.items or []:
                ref = hpa.spec.scale_target_ref
                found.setdefault((ref.kind, ref.name), hpa.metadata.name)
            return found

        by_target = await self._hpas.get(f"hpas:{target.namespace}", load)
        if not by_target:
            return None
        name = by_target.get((target.kind, target.name))
        return f"{target.namespace}/{name}" if name else None
