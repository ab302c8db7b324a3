"""Small builders for detector tests: events are described by what matters (who, when, what moved).

Times are minutes relative to ``NOW`` (``at=-41`` is 41 minutes before now), because every
rule in DESIGN §4 is phrased as "within N minutes".
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
from collections.abc import Iterable, Mapping

from webhook.actions.model import ActionEvent, ActorClass, ResourceChange, TargetRef
from webhook.actions.quantities import parse_quantity
from webhook.detection.situation import Situation
from webhook.policy.defaults import default_policies
from webhook.policy.model import PatternType
from webhook.policy.resolved import PatternPolicy

NOW = datetime.datetime(2026, 11, 21, 21, 0, tzinfo=datetime.timezone.utc)
AGENT = "system:serviceaccount:ops:agent"
OTHER_AGENT = "system:serviceaccount:ops:other-agent"
HPA = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
CART = TargetRef(namespace="shop", kind="Deployment", name="cart", api_version="apps/v1")

_uids = itertools.count(1)


def minutes(value: float) -> datetime.datetime:
    return NOW + datetime.timedelta(minutes=value)


def target(name: str = "cart", namespace: str = "shop", kind: str = "Deployment") -> TargetRef:
    return TargetRef(namespace=namespace, kind=kind, name=name, api_version="apps/v1")


def _actor_class(actor: str) -> ActorClass:
    return ActorClass.OBSERVED if actor == HPA else ActorClass.AUTOMATION


def action(
    action_type: str = "restart_pod", *, at: float = 0, actor: str = AGENT, on: TargetRef | None = CART,
    **fields: object,
) -> ActionEvent:
    """Any event; ``fields`` are ActionEvent fields (alert_name=, effectiveness=, replicas_before=, ...)."""
    return ActionEvent(
        uid=f"e{next(_uids)}",
        at=minutes(at),
        target=on,
        action_type=action_type,
        actor=actor,
        actor_class=_actor_class(actor),
        **fields,  # type: ignore[arg-type]
    )


def scale(before: int, after: int, *, at: float = 0, actor: str = AGENT, on: TargetRef | None = CART,
          action_type: str = "scale_deployment", **fields: object) -> ActionEvent:
    return action(action_type, at=at, actor=actor, on=on, replicas_before=before, replicas_after=after, **fields)


def change(before: str, after: str, *, container: str = "app", resource: str = "memory",
           field: str = "limits") -> ResourceChange:
    return ResourceChange(
        container=container, resource=resource, field=field,
        before=parse_quantity(before), after=parse_quantity(after), before_text=before, after_text=after,
    )


def resources(before: str | None = None, after: str | None = None, *, at: float = 0, actor: str = AGENT,
              on: TargetRef | None = CART, container: str = "app", resource: str = "memory",
              field: str = "limits", changes: Iterable[ResourceChange] = (),
              action_type: str = "increase_resources", **fields: object) -> ActionEvent:
    """A resource change: one dimension by ``before``/``after``, or several by ``changes``."""
    moved = list(changes)
    if before is not None and after is not None:
        moved.insert(0, change(before, after, container=container, resource=resource, field=field))
    return action(action_type, at=at, actor=actor, on=on, resource_changes=tuple(moved), **fields)


def situation(proposed: ActionEvent, history: Iterable[ActionEvent] = (), *,
              actor_history: Iterable[ActionEvent] = (), now: datetime.datetime = NOW,
              resets: Mapping[PatternType, datetime.datetime] | None = None,
              target_effectiveness: Mapping[str, float] | None = None) -> Situation:
    return Situation(
        proposed=proposed, now=now, history=tuple(history), actor_history=tuple(actor_history),
        resets=dict(resets or {}), target_effectiveness=dict(target_effectiveness or {}),
    )


def policy(pattern: PatternType, *, thresholds: Mapping[str, float] | None = None,
           without: Iterable[str] = (), **overrides: object) -> PatternPolicy:
    """The built-in policy for ``pattern``, with some thresholds replaced or removed, or fields replaced."""
    base = next(p for p in default_policies() if p.pattern == pattern)
    merged = {**base.thresholds, **(thresholds or {})}
    for name in without:
        merged.pop(name, None)
    return dataclasses.replace(base, thresholds=merged, **overrides)  # type: ignore[arg-type]


def policies() -> dict[PatternType, PatternPolicy]:
    return {p.pattern: p for p in default_policies()}


def uids(events: Iterable[ActionEvent]) -> list[str]:
    return [event.uid for event in events]

