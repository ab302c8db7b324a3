"""The workload behind an evicted pod: the eviction subresource names the pod but does not carry
it, so the pod is read (and, for a ReplicaSet not named after its Deployment, the ReplicaSet).

On the decision path, so cached and bounded like ``webhook.kube.lookups``: a miss waits at most
``budget`` seconds, and an unknown owner leaves the pod itself as the target.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from webhook.actions.model import TargetRef
from webhook.admission import pods
from webhook.kube.client import KubeClient
from webhook.kube.lookups import BoundedCache


class PodOwners:
    def __init__(self, client: KubeClient, *, ttl: float = 300.0, budget: float = 1.0,
                 request_timeout: float = 2.0) -> None:
        self.client = client
        self.request_timeout = request_timeout
        self.core = kubernetes.client.CoreV1Api(client.api_client)
        # A pod's owner never changes, so a long ttl; a missing pod is cached only briefly.
        self._owners: BoundedCache[TargetRef] = BoundedCache(ttl=ttl, error_ttl=5.0, budget=budget, none_ttl=5.0)

    async def owner_for(self, namespace: str, pod: str) -> TargetRef | None:
        async def load() -> TargetRef | None:
            obj: Any = await self.client.call(self.core.read_namespaced_pod, pod, namespace,
                                              timeout=self.request_timeout)
            found = pods.owner_of(self.client.api_client.sanitize_for_serialization(obj), namespace=namespace)
            if found is not None and found.kind == "ReplicaSet":
                found = await self._deployment_of(found) or found
            return found

        return await self._owners.get(f"pod:{namespace}/{pod}", load)

    async def _deployment_of(self, replica_set: TargetRef) -> TargetRef | None:
        obj: Any = await self.client.call(self.client.apps.read_namespaced_replica_set, replica_set.name,
                                          replica_set.namespace, timeout=self.request_timeout)
        for ref in obj.metadata.owner_references or []:
            if ref.kind == "Deployment" and ref.controller:
                return TargetRef(namespace=replica_set.namespace, kind="Deployment", name=ref.name,
                                 api_version="apps/v1")
        return None
