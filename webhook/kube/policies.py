"""Live policies: the cluster's ``OscillationPattern`` objects, applied within seconds of a change.

Order of precedence (``webhook.policy.provider.PolicyProvider``):

1. cluster ``OscillationPattern`` objects (sorted by name),
2. the policy file (``--policy``),
3. the built-in defaults (DESIGN §4).

For each pattern type the *first* policy in that order whose ``resourceScope`` matches the
target applies; later ones for the same pattern are ignored for that target. So a cluster
object scoped to one namespace overrides the file there and nowhere else, and an unscoped
cluster object overrides the file and the defaults everywhere.

The watcher lists the objects, then watches them; every change (and every relist after the
watch expired, ``410 Gone``) recomputes the whole cluster layer and hands it to
``PolicyProvider.set_cluster_policies``, which swaps the policy set atomically.

An object that is not valid (the model, then ``webhook.policy.validation``: every threshold and
parameter range-checked) is never applied. The CRD's schema refuses most mistakes at the API
server, but not in a cluster whose CRD predates a rule (Helm never upgrades ``crds/``), so the
gate judges every object itself. A bad edit leaves the object's last valid version in force — a
typo must not silently drop a team's cooling period back to the defaults — and a bad new object
changes nothing. The last accepted spec is recorded in the object's status (``acceptedSpec``),
so every replica, and a gate that restarts meanwhile, keeps the same version in force. Either way the object gets the condition ``Accepted=False`` with the reason and
every field at fault, and a Warning Event says the same (``kubectl describe op NAME``); a valid
one gets ``Accepted=True``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import socket
from typing import Any

import kubernetes.client
import pydantic

from webhook.kube.client import GROUP, PATTERNS, VERSION, KubeClient, is_status
from webhook.kube.informer import Informer
from webhook.policy.loader import pydantic_problems
from webhook.policy.model import OscillationPattern
from webhook.policy.provider import PolicyProvider
from webhook.policy.resolved import PatternPolicy, PolicySource

logger = logging.getLogger(__name__)

ACCEPTED = "Accepted"
ACCEPTED_SPEC = "acceptedSpec"   # status: the spec of the last accepted version, as JSON
KIND = "OscillationPattern"
# Events about cluster-scoped objects live in "default", where kubectl describe looks for them.
EVENT_NAMESPACE = "default"
COMPONENT = "safety-gate"


class Reason:
    VALID = "Valid"
    INVALID = "Invalid"


@dataclasses.dataclass(frozen=True)
class Judgement:
    """What the gate makes of one object: its policy, or why it has none."""

    name: str
    generation: int | None
    policy: PatternPolicy | None
    problems: str | None = None

    @property
    def accepted(self) -> bool:
        return self.policy is not None


def judge(obj: dict[str, Any]) -> Judgement:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "?")
    generation = meta.get("generation") if isinstance(meta.get("generation"), int) else None
    try:
        policy = PatternPolicy.from_document(OscillationPattern.model_validate(obj), source=PolicySource.CLUSTER)
    except pydantic.ValidationError as exc:
        return Judgement(name, generation, None, pydantic_problems(exc))
    except ValueError as exc:  # PolicyInvalid: every field at fault, named
        return Judgement(name, generation, None, str(exc))
    return Judgement(name, generation, policy)


def parse_pattern(obj: dict[str, Any]) -> PatternPolicy | None:
    """The policy of one cluster object, or None (logged) when it is not usable."""
    judgement = judge(obj)
    if judgement.problems is not None:
        logger.error("OscillationPattern %s is invalid and not applied: %s", judgement.name, judgement.problems)
    return judgement.policy


def last_accepted(obj: dict[str, Any]) -> PatternPolicy | None:
    """The policy of the version the gate last accepted (``status.acceptedSpec``), if any.

    It is what stays in force while a later version is invalid. Kept in the object, not only in
    memory, so a gate that restarts — or another replica — keeps the same policy in force.
    """
    raw = (obj.get("status") or {}).get(ACCEPTED_SPEC)
    if not isinstance(raw, str):
        return None
    try:
        spec = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(spec, dict):
        return None
    return judge({"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": obj.get("metadata") or {},
                  "spec": spec}).policy


def condition(judgement: Judgement, *, kept: PatternPolicy | None, now: datetime.datetime) -> dict[str, Any]:
    """The ``Accepted`` condition (the shape of metav1.Condition) for what the gate made of it."""
    if judgement.accepted:
        status, reason, message = "True", Reason.VALID, "valid: in force"
    else:
        still = ("its last valid version stays in force" if kept is not None
                 else "the other policies stay in force without it")
        status, reason, message = "False", Reason.INVALID, f"not applied ({still}): {judgement.problems}"
    found: dict[str, Any] = {
        "type": ACCEPTED, "status": status, "reason": reason, "message": message[:32768],
        "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if judgement.generation is not None:
        found["observedGeneration"] = judgement.generation
    return found


def status_patch(obj: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """A merge patch setting ``wanted`` among the object's conditions (and, for an accepted
    version, its spec as ``acceptedSpec``), or None when both are already there.

    Comparing without the transition time keeps replicas (and the watch event each write causes)
    from rewriting the same condition over and over; the time changes only with the status. The
    accepted spec is a JSON string so that a merge patch replaces it whole.
    """
    status = obj.get("status") or {}
    conditions = [c for c in (status.get("conditions") or []) if isinstance(c, dict)]
    current = next((c for c in conditions if c.get("type") == ACCEPTED), None)
    accepted_spec = None
    if wanted["status"] == "True":
        accepted_spec = json.dumps(obj.get("spec") or {}, sort_keys=True, separators=(",", ":"))
    spec_current = accepted_spec is None or status.get(ACCEPTED_SPEC) == accepted_spec
    if current is not None and _same(current, wanted) and spec_current:
        return None
    if current is not None and current.get("status") == wanted["status"]:
        wanted = {**wanted, "lastTransitionTime": current.get("lastTransitionTime", wanted["lastTransitionTime"])}
    others = [c for c in conditions if c.get("type") != ACCEPTED]
    patch: dict[str, Any] = {"conditions": [*others, wanted]}
    if accepted_spec is not None:
        patch[ACCEPTED_SPEC] = accepted_spec
    return {"status": patch}


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keys = ("status", "reason", "message", "observedGeneration")
    return all(current.get(key) == wanted.get(key) for key in keys)


def rejection_event(obj: dict[str, Any], wanted: dict[str, Any], *, now: datetime.datetime) -> dict[str, Any]:
    """A Warning Event on the object saying why it is not applied.

    Its name is derived from the object and its generation, so the replicas of the gate create one
    Event per bad version between them (the others get AlreadyExists), not one each.
    """
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "unnamed")
    digest = hashlib.sha256(f"{meta.get('uid')}/{meta.get('generation')}/{wanted['message']}".encode()).hexdigest()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name[:200]}.{digest[:16]}", "namespace": EVENT_NAMESPACE},
        "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": name, "uid": meta.get("uid"),
                           "resourceVersion": meta.get("resourceVersion")},
        "type": "Warning", "reason": "InvalidPolicy", "message": wanted["message"][:1024],
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname()[:128], "action": "Validate",
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


class PolicyWatcher:
    def __init__(self, client: KubeClient, *, provider: PolicyProvider) -> None:
        self.client = client
        self.provider = provider
        self._objects: dict[str, PatternPolicy] = {}
        self._reports: set[asyncio.Task[None]] = set()
        self._core = kubernetes.client.CoreV1Api(client.api_client)
        self.informer = Informer(
            client, name="policies",
            list_fn=functools.partial(client.custom.list_cluster_custom_object, GROUP, VERSION, PATTERNS),
            on_sync=self._on_sync, on_event=self._on_event)

    @property
    def synced(self) -> bool:
        return self.informer.synced.is_set()

    def start(self) -> None:
        self.informer.start()

    async def stop(self) -> None:
        await self.informer.stop()
        for task in list(self._reports):
            task.cancel()
        await asyncio.gather(*self._reports, return_exceptions=True)

    async def _on_sync(self, items: list[dict[str, Any]]) -> None:
        previous, self._objects = self._objects, {}
        for obj in items:
            judgement = judge(obj)
            kept = previous.get(judgement.name) or last_accepted(obj)
            in_force = judgement.policy or kept
            if in_force is not None:
                self._objects[judgement.name] = in_force
            self._judged(obj, judgement, kept=kept)
        self._publish()

    async def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        if kind == "DELETED":
            self._objects.pop(name, None)
        elif kind in ("ADDED", "MODIFIED"):
            judgement = judge(obj)
            kept = self._objects.get(name) or last_accepted(obj)
            if judgement.policy is None and kept is self._objects.get(name):
                self._judged(obj, judgement, kept=kept)
                return  # nothing changed in force
            in_force = judgement.policy or kept
            assert in_force is not None
            self._objects[name] = in_force
            self._judged(obj, judgement, kept=kept)
        else:
            return
        self._publish()

    def _judged(self, obj: dict[str, Any], judgement: Judgement, *, kept: PatternPolicy | None) -> None:
        if not judgement.accepted:
            logger.error("OscillationPattern %s is invalid and not applied (%s): %s", judgement.name,
                         "previous version kept" if kept is not None else "not in force", judgement.problems)
        wanted = condition(judgement, kept=kept, now=datetime.datetime.now(datetime.timezone.utc))
        patch = status_patch(obj, wanted)
        if patch is None:
            return
        task = asyncio.create_task(self._report(obj, patch, wanted), name=f"policy-status:{judgement.name}")
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _report(self, obj: dict[str, Any], patch: dict[str, Any], wanted: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        try:
            await self.client.call(self.client.custom.patch_cluster_custom_object_status, GROUP, VERSION, PATTERNS,
                                   name, patch)
        except Exception as exc:  # noqa: BLE001 - RBAC, a deleted object, the API server: the log says it
            if not is_status(exc, 404):
                logger.warning("OscillationPattern %s: cannot write its %s condition: %s", name, ACCEPTED,
                               _short(exc))
        if wanted["status"] == "True":
            return
        event = rejection_event(obj, wanted, now=datetime.datetime.now(datetime.timezone.utc))
        try:
            await self.client.call(self._core.create_namespaced_event, EVENT_NAMESPACE,
                                   kubernetes.client.CoreV1Event.from_dict(event))
        except Exception as exc:  # noqa: BLE001
            if not is_status(exc, 409):  # another replica reported this version already
                logger.warning("OscillationPattern %s: cannot record an Event: %s", name, _short(exc))

    def _publish(self) -> None:
        policies = list(self._objects.values())
        self.provider.set_cluster_policies(policies)
        logger.info("cluster policies in force: %s",
                    ", ".join(f"{p.name} ({p.pattern.value}, {p.enforcement.value})" for p in
                              sorted(policies, key=lambda p: p.name)) or "none")


def _short(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    return f"{status} {reason}" if status else f"{type(exc).__name__}: {exc}"
