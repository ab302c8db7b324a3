"""From an admission request to the change it proposes (DESIGN §2). Pure: no history, no I/O.

Three shapes reach the gate: a Deployment/StatefulSet UPDATE (old and new object), the
``scale`` subresource (two ``autoscaling/v1 Scale`` objects, which carry no labels), and a
Tekton PipelineRun CREATE whose target and intent are carried in Kubernaut's conventions.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from webhook.actions.model import ActionEvent, ActorClass, ImageChange, ResourceChange, TargetRef
from webhook.actions.quantities import parse_quantity
from webhook.admission import pods
from webhook.admission.review import AdmissionRequest

PREFIX = "ai.prometheus-alerts-slm.io/"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
KUBERNAUT_TARGET = "kubernaut.ai/target-resource"
KUBERNAUT_WORKFLOW_EXECUTION = "kubernaut.ai/workflow-execution"
KUBERNAUT_WORKFLOW_ID = "kubernaut.ai/workflow-id"
KUBERNAUT_SOURCE_NAMESPACE = "kubernaut.ai/source-namespace"
MAX_TEXT = 253  # context and action types from free text: indexed columns, so bounded like a name
WORKLOAD_KINDS = {"deployments": "Deployment", "statefulsets": "StatefulSet"}
_CANONICAL_KINDS = {
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet",
    "daemonset": "DaemonSet", "daemonsets": "DaemonSet", "ds": "DaemonSet",
    "pod": "Pod", "pods": "Pod", "node": "Node", "nodes": "Node",
    "persistentvolumeclaim": "PersistentVolumeClaim", "pvc": "PersistentVolumeClaim",
    "replicaset": "ReplicaSet", "rs": "ReplicaSet",
}


@dataclasses.dataclass(frozen=True)
class Proposal:
    """The change one admission request proposes, plus what is needed to judge and record it."""

    event: ActionEvent
    username: str
    groups: tuple[str, ...]
    dry_run: bool
    labels: Mapping[str, str] | None   # the target's labels when the request carries them
    image_candidates: tuple[str, ...] = ()  # new images, to tell a rollback from an update
    # A Kubernaut PipelineRun's WorkflowExecution (namespace, name): its business context (action
    # type, signal name) is read from the cluster, by webhook.kube.kubernaut, when the request
    # itself does not say.
    workflow_execution: tuple[str, str] | None = None
    action_type_given: bool = True   # by the request itself (label or param), not a fallback
    # An eviction names its pod but does not carry it: (namespace, pod name) for the gate to read
    # the pod's owner from the cluster (webhook.kube.owners); the target is the pod until then.
    pod_to_resolve: tuple[str, str] | None = None


def canonical_kind(kind: str) -> str:
    return _CANONICAL_KINDS.get(kind.lower(), kind[:1].upper() + kind[1:])


def extract(request: AdmissionRequest, *, now: datetime.datetime) -> Proposal | None:
    """Return the proposal, or None when the request is not something the gate judges."""
    group, resource, sub = request.resource.group, request.resource.resource, request.subResource or ""
    if group == "apps" and resource in WORKLOAD_KINDS and request.operation == "UPDATE":
        if sub == "scale":
            return _from_scale(request, kind=WORKLOAD_KINDS[resource], now=now)
        if sub == "":
            return _from_workload(request, kind=WORKLOAD_KINDS[resource], now=now)
        return None
    if group == "tekton.dev" and resource == "pipelineruns" and request.operation == "CREATE" and not sub:
        return _from_pipelinerun(request, now=now)
    if group == "" and resource == "nodes" and request.operation == "UPDATE" and not sub:
        return _from_node(request, now=now)
    if group == "" and resource == "persistentvolumeclaims" and request.operation == "UPDATE" and not sub:
        return _from_pvc(request, now=now)
    if group == "" and resource == "pods" and request.operation == "UPDATE" and not sub:
        return _from_pod_labels(request, now=now)
    if group == "" and resource == "pods" and (
            (request.operation == "DELETE" and not sub) or (request.operation == "CREATE" and sub == "eviction")):
        return _from_pod_restart(request, now=now)
    return None


def _base_event(request: AdmissionRequest, *, target: TargetRef | None, action_type: str,
                now: datetime.datetime, context: Mapping[str, str | None], object_kind: str) -> ActionEvent:
    return ActionEvent(
        uid=request.uid,
        at=now,
        target=target,
        action_type=action_type,
        actor=request.userInfo.username,
        actor_class=ActorClass.AUTOMATION,  # classified later, by policy
        alert_name=context.get("alert_name"),
        correlation_id=context.get("correlation_id"),
        model_used=context.get("model_used"),
        confidence=_float(context.get("confidence")),
        bypass=context.get("bypass"),
        object_kind=object_kind,
    )


def _proposal(request: AdmissionRequest, event: ActionEvent, *, labels: Mapping[str, str] | None,
              images: tuple[str, ...] = ()) -> Proposal:
    return Proposal(
        event=event,
        username=request.userInfo.username,
        groups=tuple(request.userInfo.groups),
        dry_run=request.dryRun,
        labels=labels,
        image_candidates=images,
    )


def _suffixed(action_type: str, kind: str) -> str:
    if kind != "StatefulSet":
        return action_type
    if action_type.endswith("_deployment"):
        return action_type[: -len("_deployment")] + "_statefulset"
    return action_type + "_statefulset"


# --- the scale subresource --------------------------------------------------------------------


def _from_scale(request: AdmissionRequest, *, kind: str, now: datetime.datetime) -> Proposal | None:
    new, old = request.object or {}, request.oldObject or {}
    before, after = _replicas(old), _replicas(new)
    if before == after:
        return None
    name = request.name or _meta(new).get("name")
    if not name or not request.namespace:
        return None
    target = TargetRef(namespace=request.namespace, kind=kind, name=name, api_version="apps/v1")
    context = _context(_meta(new).get("annotations") or {}, {}, {})
    event = _base_event(request, target=target, action_type=_suffixed("scale_deployment", kind), now=now,
                        context=context, object_kind="Scale")
    event = event.replace(replicas_before=before, replicas_after=after)
    return _proposal(request, event, labels=None)


def _replicas(obj: Mapping[str, Any], default: int | None = None) -> int | None:
    value = (obj.get("spec") or {}).get("replicas", default)
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    return default


# --- Deployment / StatefulSet updates ---------------------------------------------------------


def _from_workload(request: AdmissionRequest, *, kind: str, now: datetime.datetime) -> Proposal | None:
    new, old = request.object or {}, request.oldObject or {}
    if not new or not old:
        return None
    meta = _meta(new)
    name = request.name or meta.get("name")
    if not name or not request.namespace:
        return None
    # An omitted spec.replicas means 1 for both kinds.
    replicas_before, replicas_after = _replicas(old, 1), _replicas(new, 1)
    old_template = (old.get("spec") or {}).get("template") or {}
    new_template = (new.get("spec") or {}).get("template") or {}
    resource_changes = _resource_changes(old_template, new_template)
    image_changes = _image_changes(old_template, new_template)
    restarted = _annotation(old_template, RESTARTED_AT) != _annotation(new_template, RESTARTED_AT) and bool(
        _annotation(new_template, RESTARTED_AT)
    )
    other_template_change = _strip_known(old_template) != _strip_known(new_template)
    other_spec_change = _spec_without(old) != _spec_without(new)

    if replicas_before != replicas_after:
        action_type = "scale_deployment"
    elif any(change.direction for change in resource_changes):
        rising = any(change.direction > 0 for change in resource_changes)
        action_type = "increase_resources" if rising else "decrease_resources"
    elif restarted:
        action_type = "restart_deployment"
    elif image_changes or other_template_change or other_spec_change:
        action_type = "update_deployment"  # may become rollback_deployment once history is known
    else:
        return None  # metadata or status only: not an action
    target = TargetRef(namespace=request.namespace, kind=kind, name=name, api_version="apps/v1")
    context = _context(meta.get("annotations") or {}, {}, {})
    event = _base_event(request, target=target, action_type=_suffixed(action_type, kind), now=now,
                        context=context, object_kind=kind)
    event = event.replace(
        replicas_before=replicas_before,
        replicas_after=replicas_after,
        resource_changes=tuple(resource_changes),
        image_changes=tuple(image_changes),
    )
    images = tuple(change.after for change in image_changes if change.after)
    return _proposal(request, event, labels=dict(meta.get("labels") or {}), images=images)


def _containers(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    spec = template.get("spec") or {}
    found: dict[str, Mapping[str, Any]] = {}
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict) and isinstance(container.get("name"), str):
                found[container["name"]] = container
    return found


def _resource_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ResourceChange]:
    before, after = _containers(old), _containers(new)
    changes: list[ResourceChange] = []
    for name in sorted(set(before) | set(after)):
        old_res = (before.get(name) or {}).get("resources") or {}
        new_res = (after.get(name) or {}).get("resources") or {}
        for field in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                old_text = (old_res.get(field) or {}).get(resource)
                new_text = (new_res.get(field) or {}).get(resource)
                if old_text == new_text:
                    continue
                changes.append(ResourceChange(
                    container=name, resource=resource, field=field,
                    before=parse_quantity(old_text), after=parse_quantity(new_text),
                    before_text=None if old_text is None else str(old_text),
                    after_text=None if new_text is None else str(new_text),
                ))
    return changes


def _image_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ImageChange]:
    before, after = _containers(old), _containers(new)
    return [
        ImageChange(container=name, before=(before.get(name) or {}).get("image"), after=after[name].get("image"))
        for name in sorted(after)
        if (before.get(name) or {}).get("image") != after[name].get("image")
    ]


def _strip_known(template: Mapping[str, Any]) -> Any:
    """The template without what has its own action type: resources, images, restartedAt.

    Copies only the dicts on the paths it removes from (not the whole template: this runs on
    every request, and a deep copy of a full pod template was a measurable share of it)."""
    stripped = dict(template)
    metadata = stripped.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        annotations = {k: v for k, v in metadata["annotations"].items() if k != RESTARTED_AT}
        stripped["metadata"] = {**metadata, "annotations": annotations}
    spec = stripped.get("spec")
    if isinstance(spec, dict):
        spec = stripped["spec"] = dict(spec)
        for key in ("initContainers", "containers"):
            if isinstance(spec.get(key), list):
                spec[key] = [{k: v for k, v in c.items() if k not in ("resources", "image")}
                             if isinstance(c, dict) else c for c in spec[key]]
    return stripped


def _spec_without(obj: Mapping[str, Any]) -> Any:
    spec = dict(obj.get("spec") or {})
    spec.pop("template", None)
    spec.pop("replicas", None)
    return spec


def _annotation(template: Mapping[str, Any], key: str) -> str | None:
    return ((template.get("metadata") or {}).get("annotations") or {}).get(key)


# --- pod restarts: DELETE and the eviction subresource ---------------------------------------


def _from_pod_restart(request: AdmissionRequest, *, now: datetime.datetime) -> Proposal | None:
    if pods.is_cluster_machinery(request.userInfo.username, request.userInfo.groups):
        return None
    namespace = request.namespace or ""
    evicted = request.subResource == "eviction"
    # DELETE carries the pod as oldObject; an Eviction (policy/v1) only its name.
    pod = {"metadata": {"name": request.name}} if evicted else (request.oldObject or {})
    if not evicted and not _meta(pod).get("name") and request.name:
        pod = {**pod, "metadata": {**_meta(pod), "name": request.name}}
    target = pods.owner_of(pod, namespace=namespace)
    if target is None:
        return None
    context_source = request.object if evicted else pod
    context = _context(_meta(context_source or {}).get("annotations") or {}, {}, {})
    event = _base_event(request, target=target, action_type="restart_pod", now=now, context=context,
                        object_kind="Eviction" if evicted else "Pod")
    pod_uid = _meta(pod).get("uid")
    if not evicted and isinstance(pod_uid, str) and pod_uid:
        # The API server admits one pod deletion more than once (graceful deletion, then the
        # delete itself, each with its own request uid): one restart, recorded once.
        event = event.replace(uid=f"pod-delete:{pod_uid[:MAX_TEXT]}")
    proposal = _proposal(request, event, labels=None)
    if evicted and request.name:
        proposal = dataclasses.replace(proposal, pod_to_resolve=(namespace, request.name))
    return proposal


# --- PersistentVolumeClaims: expansion --------------------------------------------------------


def _from_pvc(request: AdmissionRequest, *, now: datetime.datetime) -> Proposal | None:
    new, old = request.object or {}, request.oldObject or {}
    name = request.name or _meta(new).get("name")
    before_text, after_text = _storage_request(old), _storage_request(new)
    before, after = parse_quantity(before_text), parse_quantity(after_text)
    if not name or not request.namespace or before is None or after is None or after <= before:
        return None  # not an expansion (the API server refuses shrinking anyway)
    target = TargetRef(namespace=request.namespace, kind="PersistentVolumeClaim", name=name, api_version="v1")
    context = _context(_meta(new).get("annotations") or {}, {}, {})
    change = ResourceChange(container=name, resource="storage", field="requests", before=before, after=after,
                            before_text=before_text, after_text=after_text)
    event = _base_event(request, target=target, action_type="expand_pvc", now=now, context=context,
                        object_kind="PersistentVolumeClaim").replace(resource_changes=(change,))
    return _proposal(request, event, labels=dict(_meta(new).get("labels") or {}))


def _storage_request(pvc: Mapping[str, Any]) -> str | None:
    value = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


# --- pods: quarantine ----------------------------------------------------------------------------


def _from_pod_labels(request: AdmissionRequest, *, now: datetime.datetime) -> Proposal | None:
    """``quarantine_pod``: the documented label ``P/quarantine: "true"`` set on a pod, to take it out
    of its Service (a selector requiring the label's absence) while it is inspected."""
    new, old = request.object or {}, request.oldObject or {}
    was = (_meta(old).get("labels") or {}).get(pods.QUARANTINE_LABEL) == "true"
    now_set = (_meta(new).get("labels") or {}).get(pods.QUARANTINE_LABEL) == "true"
    if was or not now_set or pods.is_cluster_machinery(request.userInfo.username, request.userInfo.groups):
        return None
    target = pods.owner_of(new, namespace=request.namespace or "")
    if target is None:
        return None
    context = _context(_meta(new).get("annotations") or {}, {}, {})
    event = _base_event(request, target=target, action_type="quarantine_pod", now=now, context=context,
                        object_kind="Pod")
    return _proposal(request, event, labels=None)


# --- nodes: cordon and uncordon ----------------------------------------------------------------


def _from_node(request: AdmissionRequest, *, now: datetime.datetime) -> Proposal | None:
    new, old = request.object or {}, request.oldObject or {}
    name = request.name or _meta(new).get("name")
    before = (old.get("spec") or {}).get("unschedulable") is True
    after = (new.get("spec") or {}).get("unschedulable") is True
    if not new or not old or not name or before == after:
        return None  # labels, taints, status: not a schedulability change
    target = TargetRef(namespace="", kind="Node", name=name, api_version="v1")
    context = _context(_meta(new).get("annotations") or {}, {}, {})
    event = _base_event(request, target=target, action_type="drain_node", now=now, context=context,
                        object_kind="Node").replace(unschedulable=after)
    return _proposal(request, event, labels=dict(_meta(new).get("labels") or {}))


# --- Tekton PipelineRuns ----------------------------------------------------------------------


def _from_pipelinerun(request: AdmissionRequest, *, now: datetime.datetime) -> Proposal | None:
    obj = request.object or {}
    meta = _meta(obj)
    labels = {str(k): _clean(v) for k, v in (meta.get("labels") or {}).items()}
    annotations = {str(k): _clean(v) for k, v in (meta.get("annotations") or {}).items()}
    params = _params(obj)
    pipeline_ref = ((obj.get("spec") or {}).get("pipelineRef") or {}).get("name")
    given = labels.get(PREFIX + "action-type") or params.get("ACTION_TYPE")
    workflow_id = (labels.get(KUBERNAUT_WORKFLOW_ID) or "")[:MAX_TEXT] or None
    action_type = (given or workflow_id or pipeline_ref or "pipelinerun")[:MAX_TEXT]
    target = _pipelinerun_target(params, labels, annotations)
    context = _context(annotations, labels, params)
    before, after = _pipelinerun_replicas(params)
    event = _base_event(request, target=target, action_type=action_type, now=now, context=context,
                        object_kind="PipelineRun").replace(remediation=workflow_id, replicas_before=before,
                                                           replicas_after=after)
    execution = labels.get(KUBERNAUT_WORKFLOW_EXECUTION)
    workflow_execution = None
    if execution:
        workflow_execution = (labels.get(KUBERNAUT_SOURCE_NAMESPACE) or request.namespace or "", execution)
    return dataclasses.replace(_proposal(request, event, labels=None), workflow_execution=workflow_execution,
                               action_type_given=bool(given))


# The params a scaling PipelineRun names its replica counts with; the first present wins. Without a
# "before" count, the engine takes the target's last known count from history (``prepare``).
REPLICAS_AFTER_PARAMS = ("REPLICAS", "TARGET_REPLICAS", "DESIRED_REPLICAS", "replicas")
REPLICAS_BEFORE_PARAMS = ("CURRENT_REPLICAS", "REPLICAS_BEFORE", "currentReplicas")
MAX_REPLICAS = 2**31 - 1


def _pipelinerun_replicas(params: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(before, after) replica counts a PipelineRun's params state; a value that is not a count is
    not one (the run is then recorded without them, as before)."""
    def count(names: tuple[str, ...]) -> int | None:
        for name in names:
            value = params.get(name)
            if value is not None:
                text = str(value).strip()
                return int(text) if text.isdigit() and int(text) <= MAX_REPLICAS else None
        return None

    return count(REPLICAS_BEFORE_PARAMS), count(REPLICAS_AFTER_PARAMS)


def _params(obj: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for param in (obj.get("spec") or {}).get("params") or []:
        if isinstance(param, dict) and isinstance(param.get("name"), str):
            value = param.get("value")
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                found[param["name"]] = _clean(value)
    return found


def _pipelinerun_target(params: Mapping[str, str], labels: Mapping[str, str],
                        annotations: Mapping[str, str]) -> TargetRef | None:
    candidates = (
        params.get("TARGET_RESOURCE"),
        annotations.get(KUBERNAUT_TARGET),
        labels.get(KUBERNAUT_TARGET, "").replace("__", "/") or None,
        annotations.get(PREFIX + "target-resource"),
    )
    for text in candidates:
        if text:
            target = TargetRef.parse(text)
            if target is not None and max(len(target.namespace), len(target.kind), len(target.name)) <= MAX_TEXT:
                return dataclasses.replace(target, kind=canonical_kind(target.kind))
    return None


# --- shared -----------------------------------------------------------------------------------


def _clean(value: Any) -> str:
    """Params, labels and annotations are free text the API server accepts as is; PostgreSQL text
    holds neither NUL nor lone surrogates, so those are dropped or replaced rather than refused."""
    return str(value).replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _context(annotations: Mapping[str, Any], labels: Mapping[str, str],
             params: Mapping[str, str]) -> dict[str, str | None]:
    """DESIGN §2 context keys; PipelineRuns may also carry them as labels and params."""

    def first(*values: Any) -> str | None:
        for value in values:
            if isinstance(value, str) and value.strip():
                return _clean(value).strip()[:MAX_TEXT] or None
        return None

    return {
        "alert_name": first(annotations.get(PREFIX + "alert-name"), labels.get(PREFIX + "alert-name"),
                            params.get("ALERT_NAME"), labels.get("kubernaut.ai/signal-name")),
        "correlation_id": first(annotations.get(PREFIX + "correlation-id"),
                                labels.get(PREFIX + "correlation-id"), params.get("CORRELATION_ID")),
        "model_used": first(annotations.get(PREFIX + "model-used"), labels.get(PREFIX + "model-used"),
                            params.get("MODEL_USED")),
        "confidence": first(annotations.get(PREFIX + "confidence"), labels.get(PREFIX + "confidence"),
                            params.get("CONFIDENCE")),
        "bypass": first(annotations.get(PREFIX + "bypass"), labels.get(PREFIX + "bypass")),
    }


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0.0 <= number <= 1.0 else None
