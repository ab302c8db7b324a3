"""What an eviction is: the eviction subresource names the pod but does not carry it, so the pod
is read (for a ReplicaSet not named after its Deployment, the ReplicaSet too) and its node: an
eviction from a cordoned node is part of draining it (``webhook.admission.pods.evicted``).

On the decision path, so cached and bounded like ``webhook.kube.lookups``: a miss waits at most
``budget`` seconds, and an unknown owner leaves the pod itself as the target.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kubernetes

from webhook.actions.model import TargetRef
from webhook.admission import pods
from webhook.admission.extract import Proposal
from webhook.kube.client import KubeClient
from webhook.kube.lookups import BoundedCache


class PodOwners:
    def __init__(self, client: KubeClient, *, ttl: float = 300.0, budget: float = 1.0,
                 request_timeout: float = 2.0) -> None:
        self.client = client
        self.request_timeout = request_timeout
        self.core = kubernetes.client.CoreV1Api(client.api_client)
        # A pod's owner never changes, so a long ttl; a missing pod is cached only briefly.
        self._pods: BoundedCache[dict[str, Any]] = BoundedCache(ttl=ttl, error_ttl=5.0, budget=budget, none_ttl=5.0)
        self._deployments: BoundedCache[TargetRef] = BoundedCache(ttl=ttl, error_ttl=5.0, budget=budget)
        # Cordoned or not changes within seconds of a drain starting: a short ttl.
        self._cordoned: BoundedCache[bool] = BoundedCache(ttl=2.0, error_ttl=2.0, budget=budget)

    async def resolve(self, proposal: Proposal) -> Proposal:
        """The eviction's action type and target from the cluster; unchanged if it cannot be read."""
        if proposal.pod_to_resolve is None or proposal.event.target is None:
            return proposal
        namespace, name = proposal.pod_to_resolve

        async def load_pod() -> dict[str, Any]:
            obj: Any = await self.client.call(self.core.read_namespaced_pod, name, namespace,
                                              timeout=self.request_timeout)
            return dict(self.client.api_client.sanitize_for_serialization(obj))

        pod = await self._pods.get(f"pod:{namespace}/{name}", load_pod)
        if pod is None:
            return proposal
        node = (pod.get("spec") or {}).get("nodeName")
        cordoned = await self._node_cordoned(node) if node else None
        action_type, target = pods.evicted(proposal.event.target, pod, namespace=namespace,
                                           node_unschedulable=cordoned)
        if target.kind == "ReplicaSet":
            target = await self._deployments.get(f"rs:{target.key}", lambda: self._deployment_of(target)) or target
        return dataclasses.replace(proposal, event=proposal.event.replace(action_type=action_type, target=target))

    async def _node_cordoned(self, node: str) -> bool | None:
        async def load() -> bool:
            obj: Any = await self.client.call(self.core.read_node, node, timeout=self.request_timeout)
            return bool(obj.spec and obj.spec.unschedulable)

        return await self._cordoned.get(f"node:{node}", load)

    async def _deployment_of(self, replica_set: TargetRef) -> TargetRef | None:
        obj: Any = await self.client.call(self.client.apps.read_namespaced_replica_set, replica_set.name,
                                          replica_set.namespace, timeout=self.request_timeout)
        for ref in obj.metadata.owner_references or []:
            if ref.kind == "Deployment" and ref.controller:
                return TargetRef(namespace=replica_set.namespace, kind="Deployment", name=ref.name,
                                 api_version="apps/v1")
        return None
