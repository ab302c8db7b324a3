"""Builders of realistic AdmissionReview v1 bodies, as a kube-apiserver sends them."""

from __future__ import annotations

import copy
import uuid
from typing import Any

AGENT = "system:serviceaccount:remediation:kubernaut-agent"
HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
PERSON = "alice@example.com"
SA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:remediation", "system:authenticated"]
PREFIX = "ai.prometheus-alerts-slm.io/"


def _user(username: str, groups: list[str] | None) -> dict[str, Any]:
    if groups is None:
        groups = SA_GROUPS if username.startswith("system:serviceaccount:") else ["system:authenticated"]
    return {"username": username, "groups": groups}


def review(request: dict[str, Any]) -> dict[str, Any]:
    request.setdefault("uid", str(uuid.uuid4()))
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def deployment(name: str = "cart", namespace: str = "shop", *, replicas: int = 3, memory_limit: str = "64Mi",
               image: str = "registry.example/cart:1.0", annotations: dict[str, str] | None = None,
               labels: dict[str, str] | None = None, restarted_at: str | None = None,
               kind: str = "Deployment") -> dict[str, Any]:
    template_annotations = {"kubectl.kubernetes.io/restartedAt": restarted_at} if restarted_at else {}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name},
                     "annotations": annotations or {}, "generation": 4},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": template_annotations},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "resources": {"requests": {"cpu": "100m", "memory": memory_limit},
                                  "limits": {"memory": memory_limit}},
                }]},
            },
        },
        "status": {"replicas": replicas},
    }


def workload_update(old: dict[str, Any], new: dict[str, Any], *, user: str = AGENT,
                    groups: list[str] | None = None, dry_run: bool = False, uid: str | None = None) -> dict[str, Any]:
    kind = new["kind"]
    resource = "deployments" if kind == "Deployment" else "statefulsets"
    return review({
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": "apps", "version": "v1", "kind": kind},
        "resource": {"group": "apps", "version": "v1", "resource": resource},
        "requestKind": {"group": "apps", "version": "v1", "kind": kind},
        "requestResource": {"group": "apps", "version": "v1", "resource": resource},
        "name": new["metadata"]["name"],
        "namespace": new["metadata"]["namespace"],
        "operation": "UPDATE",
        "userInfo": _user(user, groups),
        "object": new,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
    })


def scale(name: str = "cart", namespace: str = "shop", *, before: int, after: int, user: str = AGENT,
          groups: list[str] | None = None, dry_run: bool = False, kind: str = "Deployment",
          uid: str | None = None) -> dict[str, Any]:
    """The ``scale`` subresource: autoscaling/v1 Scale objects, which carry no labels."""
    resource = "deployments" if kind == "Deployment" else "statefulsets"

    def scale_object(replicas: int) -> dict[str, Any]:
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas}, "status": {"replicas": before, "selector": f"app={name}"}}

    return review({
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "resource": {"group": "apps", "version": "v1", "resource": resource},
        "subResource": "scale",
        "requestKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "requestResource": {"group": "apps", "version": "v1", "resource": resource},
        "requestSubResource": "scale",
        "name": name,
        "namespace": namespace,
        "operation": "UPDATE",
        "userInfo": _user(user, groups),
        "object": scale_object(after),
        "oldObject": scale_object(before),
        "dryRun": dry_run,
    })


def replicas_patch(before: int, after: int, **kwargs: Any) -> dict[str, Any]:
    """A Deployment UPDATE that changes spec.replicas (kubectl patch / apply)."""
    name = kwargs.pop("name", "cart")
    namespace = kwargs.pop("namespace", "shop")
    return workload_update(deployment(name, namespace, replicas=before), deployment(name, namespace, replicas=after),
                           **kwargs)


def memory_change(before: str, after: str, *, alert: str | None = None, name: str = "cart",
                  namespace: str = "shop", **kwargs: Any) -> dict[str, Any]:
    annotations = {PREFIX + "alert-name": alert} if alert else {}
    old = deployment(name, namespace, memory_limit=before, annotations=annotations)
    new = deployment(name, namespace, memory_limit=after, annotations=annotations)
    return workload_update(old, new, **kwargs)


def pipelinerun(*, action_type: str = "restart_pod", target: str | None = "shop/Deployment/cart",
                alert: str | None = "KubePodCrashLooping", namespace: str = "kubernaut", user: str = AGENT,
                api_version: str = "tekton.dev/v1", dry_run: bool = False, labels: dict[str, str] | None = None,
                annotations: dict[str, str] | None = None, params: list[dict[str, Any]] | None = None,
                uid: str | None = None) -> dict[str, Any]:
    version = api_version.split("/")[1]
    run_params = [] if params is None else copy.deepcopy(params)
    if params is None:
        run_params.append({"name": "ACTION_TYPE", "value": action_type})
        if target:
            run_params.append({"name": "TARGET_RESOURCE", "value": target})
        if alert:
            run_params.append({"name": "ALERT_NAME", "value": alert})
    obj = {
        "apiVersion": api_version, "kind": "PipelineRun",
        "metadata": {"generateName": "kubernaut-", "namespace": namespace, "labels": labels or {},
                     "annotations": annotations or {}},
        "spec": {"pipelineRef": {"name": "kubernaut-action"}, "params": run_params},
    }
    return review({
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": "tekton.dev", "version": version, "kind": "PipelineRun"},
        "resource": {"group": "tekton.dev", "version": version, "resource": "pipelineruns"},
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": _user(user, None),
        "object": obj,
        "oldObject": None,
        "dryRun": dry_run,
    })
