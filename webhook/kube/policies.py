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
``PolicyProvider.set_cluster_policies``, which swaps the policy set atomically. An object the
model refuses (``OscillationPattern.model_validate`` — the CRD schema catches most mistakes
earlier) is logged and left out; the rest stay in force.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import pydantic

from webhook.kube.client import GROUP, PATTERNS, VERSION, KubeClient
from webhook.kube.informer import Informer
from webhook.policy.model import OscillationPattern
from webhook.policy.provider import PolicyProvider
from webhook.policy.resolved import PatternPolicy

logger = logging.getLogger(__name__)


def parse_pattern(obj: dict[str, Any]) -> PatternPolicy | None:
    """The policy of one cluster object, or None (logged) when it is not usable."""
    name = (obj.get("metadata") or {}).get("name", "?")
    try:
        return PatternPolicy.from_document(OscillationPattern.model_validate(obj), source="cluster")
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        logger.error("OscillationPattern %s is invalid and ignored: %s", name, problems)
    except ValueError as exc:
        logger.error("OscillationPattern %s is invalid and ignored: %s", name, exc)
    return None


class PolicyWatcher:
    def __init__(self, client: KubeClient, *, provider: PolicyProvider) -> None:
        self.provider = provider
        self._objects: dict[str, PatternPolicy] = {}
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

    async def _on_sync(self, items: list[dict[str, Any]]) -> None:
        self._objects = {}
        for obj in items:
            policy = parse_pattern(obj)
            if policy is not None:
                self._objects[policy.name] = policy
        self._publish()

    async def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        if kind == "DELETED":
            self._objects.pop(name, None)
        elif kind in ("ADDED", "MODIFIED"):
            policy = parse_pattern(obj)
            if policy is None:
                self._objects.pop(name, None)  # the object as it is now is not usable: not in force
            else:
                self._objects[name] = policy
        else:
            return
        self._publish()

    def _publish(self) -> None:
        policies = list(self._objects.values())
        self.provider.set_cluster_policies(policies)
        logger.info("cluster policies in force: %s",
                    ", ".join(f"{p.name} ({p.pattern.value}, {p.enforcement.value})" for p in
                              sorted(policies, key=lambda p: p.name)) or "none")
