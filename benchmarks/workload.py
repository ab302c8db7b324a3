"""The requests the benchmarks send: realistic AdmissionReview bodies, generated without I/O.

An agent per target (so the cascading-failure budget of one actor is not what is measured)
changes replicas, memory, restarts the pods or launches a PipelineRun. A share of the
targets oscillates — replicas 3→4→3, memory 128Mi→256Mi→128Mi — and so gets cooled or
refused; the rest move one way. Deployments are full objects (several containers, probes,
env, managedFields) of a few KB, as the API server sends them.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import random
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

from tests import reviews


class Kind(enum.Enum):
    REPLICAS = "replicas"          # Deployment UPDATE changing spec.replicas (kubectl apply/patch)
    SCALE = "scale"                # deployments/scale UPDATE (kubectl scale)
    RESOURCES = "resources"        # Deployment UPDATE changing a memory request/limit
    RESTART = "restart"            # Deployment UPDATE of the restartedAt annotation (kubectl rollout restart)
    PIPELINERUN = "pipelinerun"    # Tekton PipelineRun CREATE naming the target


DEFAULT_MIX: dict[Kind, float] = {Kind.REPLICAS: 0.3, Kind.SCALE: 0.2, Kind.RESOURCES: 0.2, Kind.RESTART: 0.1,
                                  Kind.PIPELINERUN: 0.2}


def _container(name: str, *, image: str, memory: str, port: int) -> dict[str, Any]:
    return {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": f"{name.upper()}_SETTING_{i}", "value": f"value-{i}-" + "x" * 24} for i in range(8)],
        "resources": {"requests": {"cpu": "100m", "memory": memory}, "limits": {"cpu": "500m", "memory": memory}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"}, "periodSeconds": 10,
                          "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port, "scheme": "HTTP"}, "periodSeconds": 5,
                           "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "cache", "mountPath": "/cache"}],
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }


def deployment(*, name: str, namespace: str, replicas: int, memory: str, restarted_at: str | None) -> dict[str, Any]:
    """A Deployment as stored by the API server: what makes a real review a few KB."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace, "tier": "backend"}
    template_annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}
    if restarted_at:
        template_annotations["kubectl.kubernetes.io/restartedAt"] = restarted_at
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": name, "namespace": namespace, "uid": f"00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}",
            "resourceVersion": "123456", "generation": 7, "creationTimestamp": "2026-08-01T10:00:00Z",
            "labels": labels, "annotations": {"deployment.kubernetes.io/revision": "7",
                                              reviews.PREFIX + "alert-name": "KubePodOOMKilled"},
            "managedFields": [{"manager": m, "operation": "Update", "apiVersion": "apps/v1",
                               "time": "2026-11-01T10:00:00Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}}
                              for m in ("kubectl-client-side-apply", "kube-controller-manager", "remediator")],
        },
        "spec": {
            "replicas": replicas, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": labels, "annotations": template_annotations},
                "spec": {
                    "containers": [_container("app", image=f"registry.example/{name}:1.4.2", memory=memory,
                                              port=8080),
                                   _container("sidecar", image="registry.example/proxy:2.1", memory="64Mi",
                                              port=9090)],
                    "volumes": [{"name": "config", "configMap": {"name": f"{name}-config", "defaultMode": 420}},
                                {"name": "cache", "emptyDir": {}}],
                    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                    "serviceAccountName": name, "schedulerName": "default-scheduler",
                },
            },
        },
        "status": {"observedGeneration": 7, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]},
    }


@dataclasses.dataclass
class _Target:
    name: str
    namespace: str
    agent: str
    oscillating: bool
    replicas: int = 3
    memory_mi: int = 128
    restarts: int = 0


class Workload:
    """An endless, reproducible stream of request bodies over ``targets`` workloads."""

    def __init__(self, *, targets: int, oscillating_share: float = 0.2, seed: int = 7,
                 mix: dict[Kind, float] | None = None, name_prefix: str = "app") -> None:
        self.rng = random.Random(seed)
        mix = mix or DEFAULT_MIX
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]
        self.targets = [
            _Target(name=f"{name_prefix}-{i:05d}", namespace=f"team-{i % 40:02d}",
                    agent=f"system:serviceaccount:team-{i % 40:02d}:remediator-{i}",
                    oscillating=i < oscillating_share * targets)
            for i in range(targets)
        ]
        self.counts: Counter[Kind] = Counter()

    def next_review(self) -> dict[str, Any]:
        target = self.rng.choice(self.targets)
        kind = self.rng.choices(self.kinds, self.weights)[0]
        self.counts[kind] += 1
        return _REQUEST[kind](target)

    def bodies(self) -> Iterator[bytes]:
        while True:
            yield json.dumps(self.next_review(), separators=(",", ":")).encode()


def _next_replicas(target: _Target) -> tuple[int, int]:
    before = target.replicas
    if target.oscillating:
        after = before + 1 if before == 3 else 3
    else:
        after = before + 1 if before < 50 else 3
    target.replicas = after
    return before, after


def _replicas_update(target: _Target) -> dict[str, Any]:
    before, after = _next_replicas(target)
    return reviews.workload_update(_deployment(target, replicas=before), _deployment(target, replicas=after),
                                   user=target.agent)


def _scale(target: _Target) -> dict[str, Any]:
    before, after = _next_replicas(target)
    return reviews.scale(name=target.name, namespace=target.namespace, before=before, after=after, user=target.agent)


def _resources(target: _Target) -> dict[str, Any]:
    before = target.memory_mi
    if target.oscillating:
        after = 256 if before == 128 else 128
    else:
        after = before + 64 if before < 4096 else 128
    target.memory_mi = after
    return reviews.workload_update(_deployment(target, memory=f"{before}Mi"), _deployment(target, memory=f"{after}Mi"),
                                   user=target.agent)


def _restart(target: _Target) -> dict[str, Any]:
    previous = _restarted_at(target.restarts)
    target.restarts += 1
    return reviews.workload_update(_deployment(target, restarted_at=previous),
                                   _deployment(target, restarted_at=_restarted_at(target.restarts)),
                                   user=target.agent)


def _pipelinerun(target: _Target) -> dict[str, Any]:
    return reviews.pipelinerun(action_type="restart_pod", target=f"{target.namespace}/Deployment/{target.name}",
                               user=target.agent)


def _restarted_at(count: int) -> str | None:
    return None if count == 0 else f"2026-11-21T{count // 3600 % 24:02d}:{count // 60 % 60:02d}:{count % 60:02d}Z"


def _deployment(target: _Target, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"replicas": target.replicas, "memory": f"{target.memory_mi}Mi",
                              "restarted_at": _restarted_at(target.restarts)}
    fields.update(overrides)
    return deployment(name=target.name, namespace=target.namespace, **fields)


_REQUEST = {Kind.REPLICAS: _replicas_update, Kind.SCALE: _scale, Kind.RESOURCES: _resources, Kind.RESTART: _restart,
            Kind.PIPELINERUN: _pipelinerun}
