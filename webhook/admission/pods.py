"""Pods as the gate sees them: whose pods they are, and who restarts them (DESIGN §2).

A pod's restart is an action on its workload: the pods of a Deployment change names with every
restart, so only the workload can carry a restart storm's history. The owner is found from the
pod alone where it can be: a ReplicaSet owner whose name is ``<deployment>-<pod-template-hash>``
belongs to that Deployment (the ReplicaSet controller names them so); a StatefulSet owner is the
workload. A pod without a known owner is its own target.

Pure: the eviction subresource carries no pod, so ``webhook.kube.owners`` reads it and asks
:func:`owner_of` the same question.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from webhook.actions.model import TargetRef

POD_TEMPLATE_HASH = "pod-template-hash"
# Set to "true" by an agent isolating a pod (``quarantine_pod``); the gate's convention, documented
# in the user guide. A Service selecting ``!ai.prometheus-alerts-slm.io/quarantine`` drops the pod.
QUARANTINE_LABEL = "ai.prometheus-alerts-slm.io/quarantine"

# Who restarts pods as part of running the cluster, not as a remediation: the kubelet and nodes
# (the chart's matchConditions keep them away; checked here too, for a chart without them), the
# control plane's controllers (ReplicaSet scale-down, garbage collection, node lifecycle) and
# the scheduler's preemption.
_CONTROL_PLANE_USERS = frozenset({"system:kube-controller-manager", "system:kube-scheduler"})
_CONTROLLER_PREFIXES = ("system:node:", "system:serviceaccount:kube-system:")
_NODE_GROUPS = frozenset({"system:nodes"})


def is_cluster_machinery(username: str, groups: Sequence[str]) -> bool:
    """True for the kubelet, nodes and kube-system's controllers: their pod deletions are not restarts."""
    return (username in _CONTROL_PLANE_USERS or username.startswith(_CONTROLLER_PREFIXES)
            or any(group in _NODE_GROUPS for group in groups))


def owner_of(pod: Mapping[str, Any], *, namespace: str) -> TargetRef | None:
    """The workload a pod belongs to (Deployment via its ReplicaSet, or StatefulSet), else the pod
    itself; None without a name."""
    meta = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    name = meta.get("name")
    if not isinstance(name, str) or not name or not namespace:
        return None
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    assert isinstance(labels, dict)
    for ref in meta.get("ownerReferences") or []:
        if not isinstance(ref, dict) or ref.get("controller") is False:
            continue
        kind, owner = ref.get("kind"), ref.get("name")
        if not isinstance(owner, str) or not owner:
            continue
        if kind == "StatefulSet":
            return TargetRef(namespace=namespace, kind="StatefulSet", name=owner, api_version="apps/v1")
        if kind == "ReplicaSet":
            template_hash = labels.get(POD_TEMPLATE_HASH)
            suffix = f"-{template_hash}"
            if isinstance(template_hash, str) and template_hash and owner.endswith(suffix) and owner != suffix:
                return TargetRef(namespace=namespace, kind="Deployment", name=owner[: -len(suffix)],
                                 api_version="apps/v1")
            return TargetRef(namespace=namespace, kind="ReplicaSet", name=owner, api_version="apps/v1")
    return TargetRef(namespace=namespace, kind="Pod", name=name, api_version="v1")


def evicted(proposal_target: TargetRef, pod: Mapping[str, Any], *, namespace: str,
            node_unschedulable: bool | None) -> tuple[str, TargetRef]:
    """What an eviction is, once its pod (and the pod's node) were read: part of draining the
    node when that node is cordoned (``drain_node`` on the Node: a drain evicts every pod on it,
    which is not a restart storm of their workloads), else ``restart_pod`` on the pod's owner."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    node = spec.get("nodeName")
    if node_unschedulable and isinstance(node, str) and node:
        return "drain_node", TargetRef(namespace="", kind="Node", name=node, api_version="v1")
    return "restart_pod", owner_of(pod, namespace=namespace) or proposal_target
