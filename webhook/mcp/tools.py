"""The seed's four MCP tools as plain async functions over a started ``Runtime``.

They only read. ``validate_action_safety`` goes through ``Gate.review(request, record=False)``,
the webhook's own path, so its verdict is the one a dry-run admission request gets; the others
read history through the gate's own ``HistoryStore`` (Redis, PostgreSQL and the outbox, with the
same fallbacks) and judge it with the same detectors and policies. So during a store outage the
tools see what the gate sees, and say which store they answered without (``store``).
Results are JSON-ready dicts (the MCP server returns them as structured content).
"""

from __future__ import annotations

import datetime
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.admission.extract import canonical_kind
from webhook.admission.review import AdmissionRequest
from webhook.detection.registry import Need, needed_before
from webhook.engine import report
from webhook.engine.gate import utcnow
from webhook.mcp import analysis
from webhook.policy.durations import DurationError, parse_duration
from webhook.policy.model import PatternType
from webhook.server.runtime import Runtime
from webhook.store.confirmation import ActionStatus
from webhook.store.detections import Detection, DetectionRepository
from webhook.store.effectiveness import EffectivenessRepository, GroupBy, Statistics
from webhook.store.errors import Gap, PostgresUnavailable
from webhook.store.history import HistoryStore

DEFAULT_ACTOR = "system:serviceaccount:safety-gate:mcp-agent"
MIN_HORIZON = datetime.timedelta(hours=3)
ANALYSIS_NOTE = (
    "patterns: each recorded action replayed as the proposed one against the actions before it; only admitted "
    "actions are recorded, so patterns the gate prevented appear under detections, not here"
)


class ToolInputError(ValueError):
    """A tool argument the caller must fix; the message says which and how."""


MAX_LOOKBACK = datetime.timedelta(days=3650)
MAX_NAME = 253          # a Kubernetes object name
MAX_WORD = 128          # an action type, a pattern name
MAX_TEXT = 1024         # a username, a scope, an alert name
MAX_REPLICAS = 2**31 - 1  # spec.replicas is an int32
MAX_PATTERN_TYPES = 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _duration(name: str, text: str) -> datetime.timedelta:
    """A look-back the history can answer: 1s to 3650d (beyond, ``now - it`` leaves the calendar)."""
    _text(name, text, max_length=MAX_WORD)
    try:
        value = parse_duration(text)
    except DurationError as exc:
        raise ToolInputError(f"{name}: {exc}") from None
    if not datetime.timedelta(seconds=1) <= value <= MAX_LOOKBACK:
        raise ToolInputError(f"{name}: {text!r} is out of range: from 1s to 3650d (e.g. 2h, 7d, 30d)")
    return value


def _text(name: str, value: object, *, max_length: int, required: bool = True) -> str:
    """A string argument as the store can hold it: no NUL or control characters, bounded length."""
    if not isinstance(value, str):
        raise ToolInputError(f"{name}: must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ToolInputError(f"{name}: is required and must not be empty")
    if len(value) > max_length:
        raise ToolInputError(f"{name}: is longer than {max_length} characters ({len(value)})")
    if _CONTROL.search(value):
        raise ToolInputError(f"{name}: must not contain control characters")
    return value


def _replicas(name: str, value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_REPLICAS:
        raise ToolInputError(f"{name}: must be a replica count from 0 to {MAX_REPLICAS}, got {value}")
    return value


def _target(namespace: str, kind: str, name: str) -> TargetRef:
    _text("namespace", namespace, max_length=MAX_NAME)
    _text("resource_kind", kind, max_length=MAX_WORD)
    _text("resource_name", name, max_length=MAX_NAME)
    return TargetRef(namespace=namespace, kind=canonical_kind(kind), name=name)


def _resource(target: TargetRef) -> dict[str, str]:
    return {"namespace": target.namespace, "kind": target.kind, "name": target.name}


def action_json(event: ActionEvent) -> dict[str, Any]:
    return {
        "timestamp": event.at.isoformat(), "action_type": event.action_type, "change": event.summary(),
        "actor": event.actor, "actor_class": event.actor_class.value, "request_uid": event.uid,
        "replicas_before": event.replicas_before, "replicas_after": event.replicas_after,
        "resource_changes": [change.describe() for change in event.resource_changes if change.direction],
        "alert_name": event.alert_name, "correlation_id": event.correlation_id, "model_used": event.model_used,
        "model_confidence": event.confidence, "effectiveness_score": event.effectiveness, "bypass": event.bypass,
    }


def effectiveness_summary(events: Sequence[ActionEvent]) -> dict[str, Any]:
    """Assessed/unassessed counts and mean scores, overall and per action type."""
    def block(group: Sequence[ActionEvent]) -> dict[str, Any]:
        scores = [e.effectiveness for e in group if e.effectiveness is not None]
        return {"actions": len(group), "assessed": len(scores),
                "mean_score": round(sum(scores) / len(scores), 3) if scores else None}

    by_type: dict[str, list[ActionEvent]] = {}
    for event in events:
        by_type.setdefault(event.action_type, []).append(event)
    return {**block(events), "by_action_type": {name: block(group) for name, group in sorted(by_type.items())}}


def _occurrence_json(pattern: PatternType, occurrence: analysis.Occurrence) -> dict[str, Any]:
    return {**report.finding_json(occurrence.finding), "completed_at": occurrence.completed_by.at.isoformat(),
            "completed_by": occurrence.completed_by.uid, "times_completed": occurrence.times}


def _history(runtime: Runtime) -> HistoryStore:
    assert runtime.history is not None, "the runtime is started before the tools are served"
    return runtime.history


async def _scan(runtime: Runtime, target: TargetRef, *, start: datetime.datetime,
                now: datetime.datetime, gaps: set[Gap], patterns: Sequence[PatternType] | None = None,
                ) -> tuple[list[ActionEvent], dict[PatternType, analysis.Occurrence]]:
    """The target's events since ``start`` and the patterns they complete, under the target's policies.

    Read as the gate reads them (``HistoryStore``): a warm cache and the outbox answer while
    PostgreSQL is down; what could not be read whole is added to ``gaps``.
    """
    history = _history(runtime)
    policies = runtime.policies().for_target(target, labels=None)
    if patterns is not None:
        policies = {p: policy for p, policy in policies.items() if p in patterns}
    reach = max([p.window for p in policies.values()] + [MIN_HORIZON])
    events = await history.target_events(target, since=start - reach, now=now, gaps=gaps)
    actor_events: dict[str, list[ActionEvent]] = {}
    budgets = [policy for pattern, policy in policies.items() if Need.ACTOR_HISTORY in needed_before([pattern])]
    if budgets:
        reach = max(policy.window for policy in budgets)
        for actor in sorted({e.actor for e in events if e.at >= start and e.actor_class is ActorClass.AUTOMATION}):
            actor_events[actor] = await history.actor_events(actor, since=start - reach, now=now, gaps=gaps)
    found = analysis.scan(events, policies=policies, actor_events=actor_events, start=start)
    return [e for e in events if e.at >= start], found


def detection_json(detection: Detection) -> dict[str, Any]:
    return {
        "alert": detection.alert, "pattern_type": detection.pattern_type, "severity": detection.severity,
        "confidence": round(detection.confidence, 3), "strategy": detection.strategy,
        "enforcement_action": detection.enforcement_action, "phase": detection.phase,
        "message": detection.message, "summary": detection.summary, "alternative": detection.alternative,
        "occurrences": detection.occurrences, "denied_requests": detection.denied_requests,
        "first_seen": detection.first_seen.isoformat(), "last_seen": detection.last_seen.isoformat(),
        "actor": detection.actor,
        "cooldown_until": detection.cooldown_until.isoformat() if detection.cooldown_until else None,
    }


async def _detections(runtime: Runtime, target: TargetRef, *, since: datetime.datetime,
                      gaps: set[Gap]) -> list[dict[str, Any]]:
    """The gate's detections on the target; none (and a gap) while PostgreSQL, which alone keeps
    them, is down: the refusals themselves still show in ``validate_action_safety``."""
    history = _history(runtime)
    repository = DetectionRepository(history.postgres.pool, cluster_id=history.postgres.cluster_id)
    try:
        found = await history.in_postgres(lambda: repository.of_target(target, since=since))
    except PostgresUnavailable:
        gaps.add(Gap.POSTGRES_DOWN)
        return []
    return [detection_json(d) for d in found]


async def _timeline(runtime: Runtime, target: TargetRef, *, since: datetime.datetime,
                    gaps: set[Gap]) -> list[tuple[ActionEvent, ActionStatus]]:
    """Every action on the target with its status (not-applied ones included); none (and a gap)
    while PostgreSQL, which alone keeps the statuses, is down."""
    history = _history(runtime)
    try:
        return await history.in_postgres(lambda: history.postgres.timeline(target, since=since))
    except PostgresUnavailable:
        gaps.add(Gap.POSTGRES_DOWN)
        return []


def store_json(runtime: Runtime, gaps: set[Gap]) -> dict[str, Any]:
    """Which store the answer was given without, as the gate would say it for a decision now."""
    return {"mode": _history(runtime).mode().value,
            "gaps": sorted(gap.value for gap in gaps),
            "complete": not any(gap.incomplete for gap in gaps) and Gap.POSTGRES_DOWN not in gaps}


# --- check_action_history ---------------------------------------------------------------------


async def check_action_history(runtime: Runtime, *, namespace: str, resource_kind: str, resource_name: str,
                               time_range: str = "24h") -> dict[str, Any]:
    target = _target(namespace, resource_kind, resource_name)
    window = _duration("time_range", time_range)
    now = utcnow()
    start = now - window
    gaps: set[Gap] = set()
    events, found = await _scan(runtime, target, start=start, now=now, gaps=gaps)
    detections = await _detections(runtime, target, since=start, gaps=gaps)
    # Truthful history: what counted (confirmed, young proposals, recorded) and, apart, what never landed.
    timeline = await _timeline(runtime, target, since=start, gaps=gaps)
    status = {event.uid: state.value for event, state in timeline}
    return {
        "resource": _resource(target),
        "time_range": {"duration": time_range, "start": start.isoformat(), "end": now.isoformat()},
        "total_actions": len(events),
        "actions": [{**action_json(e), "status": status.get(e.uid, ActionStatus.RECORDED.value)} for e in events],
        "not_applied": [{**action_json(e), "status": state.value} for e, state in timeline
                        if state is ActionStatus.NOT_APPLIED],
        "patterns": [_occurrence_json(p, o) for p, o in sorted(found.items(), key=lambda kv: kv[0].value)],
        "detections": detections,
        "effectiveness_summary": effectiveness_summary(events),
        "store": store_json(runtime, gaps),
        "notes": [ANALYSIS_NOTE],
    }


# --- detect_oscillation_patterns --------------------------------------------------------------


def _pattern_types(names: Sequence[str] | None) -> list[PatternType]:
    if not names:
        return list(PatternType)
    if len(names) > MAX_PATTERN_TYPES:
        raise ToolInputError(f"pattern_types: at most {MAX_PATTERN_TYPES} names, got {len(names)}")
    chosen = []
    for name in names:
        _text("pattern_types", name, max_length=MAX_WORD)
        try:
            chosen.append(PatternType(name.strip().lower().replace("_", "-")))
        except ValueError:
            known = ", ".join(p.value for p in PatternType)
            raise ToolInputError(f"pattern_types: unknown pattern {name!r}; known: {known}") from None
    return list(dict.fromkeys(chosen))


async def detect_oscillation_patterns(runtime: Runtime, *, namespace: str, resource_name: str,
                                      pattern_types: Sequence[str] | None = None,
                                      resource_kind: str = "Deployment") -> dict[str, Any]:
    """For each requested pattern: present in the history (completed by a recorded action) or recorded
    by the gate as a detection within the pattern's window (which includes patterns it prevented)."""
    target = _target(namespace, resource_kind, resource_name)
    patterns = _pattern_types(pattern_types)
    now = utcnow()
    policies = runtime.policies().for_target(target, labels=None)
    horizon = max([p.window for p in policies.values()] + [MIN_HORIZON])
    start = now - horizon
    gaps: set[Gap] = set()
    events, found = await _scan(runtime, target, start=start, now=now, gaps=gaps, patterns=patterns)
    detections = await _detections(runtime, target, since=start, gaps=gaps)
    results = []
    for pattern in patterns:
        policy = policies.get(pattern)
        recorded = [d for d in detections if d["pattern_type"] == pattern.value and policy is not None
                    and datetime.datetime.fromisoformat(d["last_seen"]) > now - policy.window]
        occurrence = found.get(pattern)
        entry: dict[str, Any] = {
            "pattern_type": pattern.value,
            "checked": policy is not None,
            "detected": occurrence is not None or bool(recorded),
            "policy": None if policy is None else {
                "name": policy.name, "window": str(policy.window), "strategy": policy.strategy.value,
                "enforcement_action": policy.enforcement.value,
            },
            "in_history": None if occurrence is None else _occurrence_json(pattern, occurrence),
            "gate_detections": recorded,
        }
        results.append(entry)
    return {
        "resource": _resource(target),
        "window": {"start": start.isoformat(), "end": now.isoformat()},
        "actions_in_window": len(events),
        "oscillation_detected": any(r["detected"] for r in results),
        "patterns": results,
        "store": store_json(runtime, gaps),
        "notes": [ANALYSIS_NOTE, "a pattern with checked=false has no policy for this target and is never enforced"],
    }


# --- get_action_effectiveness -----------------------------------------------------------------


def _scope(scope: str) -> tuple[str, str | None, str | None, GroupBy | None]:
    """``(label, namespace filter, kind filter, group by)`` from the seed's scope names."""
    text = (scope or "global").strip()
    head, _, value = text.replace("/", ":", 1).partition(":")
    head = head.lower()
    if head == "global" and not value:
        return "global", None, None, None
    if head == "namespace":
        return (f"namespace:{value}", value, None, None) if value else ("namespace", None, None, GroupBy.NAMESPACE)
    if head in ("resource-type", "resource_type", "kind"):
        if value:
            kind = canonical_kind(value)
            return f"resource-type:{kind}", None, kind, None
        return "resource-type", None, None, GroupBy.KIND
    raise ToolInputError(
        f"scope: {scope!r} is not one of global, namespace, namespace:NAME, resource-type, resource-type:KIND")


def _stats(row: Statistics | None) -> dict[str, Any]:
    if row is None:
        return {"total_actions": 0, "sample_size": 0, "mean_score": None, "min_score": None, "max_score": None,
                "ci95": None}
    n, mean, stddev = row.assessed, row.mean, row.stddev
    ci = None
    if n >= 2 and mean is not None and stddev is not None:
        half = 1.96 * stddev / math.sqrt(n)
        ci = [round(max(0.0, mean - half), 3), round(min(1.0, mean + half), 3)]
    return {
        "total_actions": row.total, "sample_size": n,
        "mean_score": None if mean is None else round(mean, 3),
        "min_score": None if row.min is None else round(row.min, 3),
        "max_score": None if row.max is None else round(row.max, 3),
        "ci95": ci,
    }


async def get_action_effectiveness(runtime: Runtime, *, action_type: str, scope: str = "global",
                                   time_period: str = "30d") -> dict[str, Any]:
    _text("action_type", action_type, max_length=MAX_WORD, required=False)
    _text("scope", scope, max_length=MAX_TEXT, required=False)
    label, namespace, kind, group_by = _scope(scope)
    period = _duration("time_period", time_period)
    wanted = None if action_type.strip() in ("", "*", "all") else action_type.strip()
    now = utcnow()
    since = now - period
    history = _history(runtime)
    repository = EffectivenessRepository(history.postgres.pool, cluster_id=history.postgres.cluster_id)

    async def statistics(*, action_type: str | None, group_by: GroupBy | None) -> list[Statistics]:
        # Scores live in PostgreSQL alone: while it is down this raises, and the tool says so.
        return await history.in_postgres(lambda: repository.statistics(
            since=since, action_type=action_type, namespace=namespace, kind=kind, group_by=group_by))

    overall = await statistics(action_type=wanted, group_by=None)
    body: dict[str, Any] = {
        "action_type": wanted or "all",
        "scope": label,
        "time_period": {"duration": time_period, "start": since.isoformat(), "end": now.isoformat()},
        **_stats(overall[0] if overall else None),
    }
    if group_by is not None:
        rows = await statistics(action_type=wanted, group_by=group_by)
        body["groups"] = [{"namespace" if group_by is GroupBy.NAMESPACE else "resource_type": row.group,
                           **_stats(row)} for row in rows]
    if wanted is None:
        rows = await statistics(action_type=None, group_by=GroupBy.ACTION_TYPE)
        body["by_action_type"] = {row.group: _stats(row) for row in rows}
    body["notes"] = [("scores are resource_action_traces.effectiveness_score (0..1); sample_size counts assessed "
                      "actions only, total_actions every recorded one")]
    return body


# --- validate_action_safety -------------------------------------------------------------------


def _groups(actor: str) -> list[str]:
    if actor.startswith("system:serviceaccount:"):
        namespace = actor.split(":")[2]
        return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    return ["system:authenticated"]


def _int(value: Any, *, name: str) -> int | None:
    """A replica count from ``current_state``: absent, or a count a Deployment can hold."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 10:
        value = int(value)
    elif isinstance(value, float) and value.is_integer() and abs(value) <= MAX_REPLICAS:
        value = int(value)  # JSON has one number type: 3.0 is 3
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolInputError(f"{name}: must be a replica count from 0 to {MAX_REPLICAS}, got {value!r}"[:300])
    return _replicas(name, value)


def proposed_request(*, target: TargetRef, proposed_action: str, current_state: Mapping[str, Any],
                     actor: str, target_replicas: int | None) -> tuple[str, AdmissionRequest]:
    """The admission request the proposed action would cause, as the API server would send it.

    A replica change (``scale_*`` with the current and the target replica count known, on a
    Deployment or StatefulSet) becomes the ``scale`` subresource UPDATE that ``kubectl scale``
    sends; anything else becomes a Kubernaut-style PipelineRun CREATE carrying ``ACTION_TYPE`` and
    ``TARGET_RESOURCE``.
    """
    uid = f"mcp-{uuid.uuid4()}"
    user = {"username": actor, "groups": _groups(actor)}
    before = _int(current_state.get("replicas"), name="current_state.replicas")
    if target_replicas is not None:
        after = _replicas("target_replicas", target_replicas)
    else:
        key = "target_replicas" if "target_replicas" in current_state else "desired_replicas"
        after = _int(current_state.get(key), name=f"current_state.{key}")
    resource = {"Deployment": "deployments", "StatefulSet": "statefulsets"}.get(target.kind)
    if proposed_action.startswith("scale_") and resource and before is not None and after is not None:
        def scale(replicas: int) -> dict[str, Any]:
            return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": target.name, "namespace": target.namespace},
                    "spec": {"replicas": replicas}, "status": {"replicas": before}}

        request = {
            "uid": uid, "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "resource": {"group": "apps", "version": "v1", "resource": resource}, "subResource": "scale",
            "name": target.name, "namespace": target.namespace, "operation": "UPDATE", "userInfo": user,
            "object": scale(after), "oldObject": scale(before), "dryRun": True,
        }
        return "scale-subresource", AdmissionRequest.model_validate(request)
    params = [{"name": "ACTION_TYPE", "value": proposed_action},
              {"name": "TARGET_RESOURCE", "value": target.key}]
    alert = current_state.get("alert_name")
    if alert is not None:
        params.append({"name": "ALERT_NAME",
                       "value": _text("current_state.alert_name", alert, max_length=MAX_TEXT)})
    request = {
        "uid": uid, "kind": {"group": "tekton.dev", "version": "v1", "kind": "PipelineRun"},
        "resource": {"group": "tekton.dev", "version": "v1", "resource": "pipelineruns"},
        "namespace": target.namespace, "operation": "CREATE", "userInfo": user, "dryRun": True,
        "object": {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                   "metadata": {"generateName": "safety-check-", "namespace": target.namespace},
                   "spec": {"pipelineRef": {"name": proposed_action}, "params": params}},
    }
    return "pipelinerun", AdmissionRequest.model_validate(request)


async def validate_action_safety(runtime: Runtime, *, namespace: str, resource_name: str, proposed_action: str,
                                 current_state: Mapping[str, Any] | None = None, resource_kind: str = "Deployment",
                                 actor: str | None = None, target_replicas: int | None = None) -> dict[str, Any]:
    if not isinstance(proposed_action, str) or not proposed_action.strip():
        raise ToolInputError("proposed_action is required, e.g. scale_deployment or increase_resources")
    _text("proposed_action", proposed_action, max_length=MAX_WORD)
    target = _target(namespace, resource_kind, resource_name)
    who = _text("actor", actor, max_length=MAX_TEXT) if actor is not None else DEFAULT_ACTOR
    shape, request = proposed_request(target=target, proposed_action=proposed_action.strip(),
                                      current_state=current_state or {}, actor=who, target_replicas=target_replicas)
    assert runtime.gate is not None
    result = await runtime.gate.review(request, record=False)
    body = report.summary(result)
    body.update(safe=bool(body["allowed"]) and not body["warnings"], request_kind=shape, recorded=False,
                resource=_resource(target))
    notes = ["nothing was recorded: this is the answer a dry-run admission request gets now"]
    if shape == "pipelinerun" and proposed_action.startswith("scale_"):
        notes.append("give current_state.replicas and target_replicas to judge replica patterns "
                     "(scale-oscillation, controller-fight)")
    body["notes"] = notes
    return body
