"""What an admitted review would change, in the form the cluster watch can check it against.

The watch (``webhook.kube.confirmations``) sees objects, not reviews: so each proposal names the
object it changes (the workload itself, or the PipelineRun it creates) and the field values the
object must show once the change has landed. A field the review does not move is left out, so a
concurrent write by someone else to another field never hides a landed change.
"""

from __future__ import annotations

from typing import Any

from webhook.actions.model import ActionEvent
from webhook.admission.review import AdmissionRequest
from webhook.store.confirmation import Operation, Proposed, Subject

_WORKLOADS = {"deployments": "Deployment", "statefulsets": "StatefulSet"}


def proposed_change(request: AdmissionRequest, event: ActionEvent) -> Proposed | None:
    """The proposal to confirm, or None when the gate cannot watch this object's kind."""
    group, resource = request.resource.group, request.resource.resource
    namespace = request.namespace or ""
    if group == "apps" and resource in _WORKLOADS and request.operation == "UPDATE":
        name = request.name or ((request.object or {}).get("metadata") or {}).get("name")
        change = workload_change(event)
        if not name or not change:
            return None
        old_version = ((request.oldObject or {}).get("metadata") or {}).get("resourceVersion")
        return Proposed(uid=event.uid, at=event.at, operation=Operation.UPDATE,
                        subject=Subject(kind=_WORKLOADS[resource], namespace=namespace, name=name),
                        change=change, actor=event.actor, target_key=event.target.key if event.target else None,
                        old_version=str(old_version) if old_version else None)
    if group == "tekton.dev" and resource == "pipelineruns" and request.operation == "CREATE":
        meta = (request.object or {}).get("metadata") or {}
        name = request.name or meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                return None
            name = f"{prefix}*"
        return Proposed(uid=event.uid, at=event.at, operation=Operation.CREATE,
                        subject=Subject(kind="PipelineRun", namespace=namespace, name=name),
                        change={"create": True}, actor=event.actor,
                        target_key=event.target.key if event.target else None)
    return None


def workload_change(event: ActionEvent) -> dict[str, Any]:
    """The values a workload must show once ``event`` landed: replicas, moved resources, new images."""
    change: dict[str, Any] = {}
    if event.is_scale:
        change["replicas"] = event.replicas_after
    resources = {c.dimension: c.after for c in event.resource_changes if c.direction and c.after is not None}
    if resources:
        change["resources"] = resources
    images = {c.container: c.after for c in event.image_changes if c.after and c.after != c.before}
    if images:
        change["images"] = images
    return change
