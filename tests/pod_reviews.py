"""AdmissionReviews of pod restarts: a pod DELETE (the pod as oldObject) and a ``pods/eviction``
CREATE (an Eviction naming the pod)."""

from __future__ import annotations

import itertools
from typing import Any

from tests.reviews import AGENT, review

_uids = itertools.count(1)


def pod(name: str = "cart-7d9f8b6c5d-x2x4q", namespace: str = "shop", *, deployment: str | None = "cart",
        template_hash: str = "7d9f8b6c5d", statefulset: str | None = None,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    owners: list[dict[str, Any]] = []
    labels = {"app": deployment or statefulset or name}
    if statefulset:
        owners.append({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": statefulset, "controller": True,
                       "uid": "u1"})
    elif deployment:
        owners.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{deployment}-{template_hash}",
                       "controller": True, "uid": "u1"})
        labels["pod-template-hash"] = template_hash
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "ownerReferences": owners,
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}}


def _user(username: str, groups: list[str] | None) -> dict[str, Any]:
    return {"username": username, "groups": groups or ["system:serviceaccounts", "system:authenticated"]}


def pod_delete(old: dict[str, Any] | None = None, *, user: str = AGENT, groups: list[str] | None = None,
               dry_run: bool = False) -> dict[str, Any]:
    old = old or pod()
    meta = old["metadata"]
    return review({
        "uid": f"pod-delete-{next(_uids)}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": meta["name"], "namespace": meta["namespace"], "operation": "DELETE",
        "userInfo": _user(user, groups), "object": None, "oldObject": old, "dryRun": dry_run,
    })


def eviction(name: str = "cart-7d9f8b6c5d-x2x4q", namespace: str = "shop", *, user: str = AGENT,
             groups: list[str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return review({
        "uid": f"eviction-{next(_uids)}", "kind": {"group": "policy", "version": "v1", "kind": "Eviction"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "subResource": "eviction",
        "name": name, "namespace": namespace, "operation": "CREATE", "userInfo": _user(user, groups),
        "object": {"apiVersion": "policy/v1", "kind": "Eviction",
                   "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}}},
        "oldObject": None,
    })
