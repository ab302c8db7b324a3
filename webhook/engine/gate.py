"""One admission request, end to end: extract → serialize → load → decide → remember → answer.

This is the only place where the pure layers meet the stores. The server, ``safety-gate
explain``/``replay`` and the MCP tools all go through ``Gate.review`` or ``Gate.evaluate``,
so they cannot disagree about a verdict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from webhook.actions.model import ActionEvent, ActorClass
from webhook.admission import responses
from webhook.admission.extract import Proposal, extract
from webhook.admission.review import AdmissionRequest
from webhook.decision.decide import Decision, Outcome, decide, prepare
from webhook.decision.state import GateState, alert_name, target_scope
from webhook.detection.situation import Situation
from webhook.policy.actors import ActorRules
from webhook.policy.model import PatternType, Strategy
from webhook.policy.resolved import PolicySet
from webhook.store.cache import LockTimeout
from webhook.store.history import CACHE_ERRORS, HistoryStore

logger = logging.getLogger(__name__)

RESTRICTION_MEMORY = datetime.timedelta(hours=48)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class GateResult:
    """What happened to one request: the response body plus what observability needs."""

    response: dict[str, Any]
    decision: Decision | None     # None: not a gated request (allowed, not recorded)
    latency_ms: float
    dry_run: bool = False


class Gate:
    def __init__(
        self,
        *,
        history: HistoryStore,
        policies: Callable[[], PolicySet],
        rules: ActorRules,
        excluded_namespaces: frozenset[str] = frozenset({"kube-system"}),
        clock: Callable[[], datetime.datetime] = utcnow,
        on_decision: Callable[[GateResult], None] | None = None,
        on_remembered: Callable[[Decision], None] | None = None,
        labels_for: Callable[[Any], Any] | None = None,
        hpa_for: Callable[[Any], Any] | None = None,
    ) -> None:
        self.history = history
        self.policies = policies
        self.rules = rules
        self.excluded_namespaces = excluded_namespaces
        self.clock = clock
        self.on_decision = on_decision
        self.on_remembered = on_remembered
        self.labels_for = labels_for
        self.hpa_for = hpa_for

    async def review(self, request: AdmissionRequest, *, record: bool = True) -> GateResult:
        """Decide one admission request. ``record=False`` computes the same answer and remembers nothing."""
        started = time.perf_counter()
        now = self.clock()
        proposal = extract(request, now=now)
        if proposal is None or (request.namespace or "") in self.excluded_namespaces:
            result = GateResult(response=responses.allowed(request.uid), decision=None,
                                latency_ms=(time.perf_counter() - started) * 1000, dry_run=request.dryRun)
            return result
        if not record:
            proposal = dataclasses.replace(proposal, dry_run=True)
        async with self._serialized(proposal):
            decision = await self.evaluate(proposal, now=now)
            latency_ms = (time.perf_counter() - started) * 1000
            if not proposal.dry_run:
                await self._remember(decision, now=now, latency_ms=latency_ms)
        result = GateResult(response=decision.response(), decision=decision,
                            latency_ms=(time.perf_counter() - started) * 1000, dry_run=proposal.dry_run)
        if self.on_decision:
            self.on_decision(result)
        return result

    async def evaluate(self, proposal: Proposal, *, now: datetime.datetime) -> Decision:
        """The decision for a proposal against current history; nothing is written."""
        event = proposal.event
        policy_set = self.policies()
        if event.target is None:
            return decide(proposal=proposal, situation=Situation(proposed=prepare(proposal, rules=self.rules,
                          history=()), now=now), policies={}, state=GateState(), rules=self.rules)
        labels = proposal.labels
        if labels is None and self.labels_for and policy_set.needs_labels(event.target):
            labels = await self.labels_for(event.target)
        policies = policy_set.for_target(event.target, labels=labels)
        horizon = max([p.window for p in policies.values()] + [datetime.timedelta(hours=3)])
        history = await self.history.target_events(event.target, since=now - horizon, now=now)
        event = prepare(proposal, rules=self.rules, history=history)
        actor_history: list[ActionEvent] = []
        cascading = policies.get(PatternType.CASCADING_FAILURE)
        if cascading and event.actor_class is ActorClass.AUTOMATION:
            actor_history = await self.history.actor_events(event.actor, since=now - cascading.window, now=now)
        restrictions = await self.history.postgres.restrictions(
            scopes=[target_scope(event.target)], actor=event.actor, since=now - RESTRICTION_MEMORY)
        resets: dict[PatternType, datetime.datetime] = {}
        for restriction in restrictions:
            if restriction.strategy is Strategy.COOLING_PERIOD and restriction.until <= now:
                resets[restriction.pattern] = max(resets.get(restriction.pattern, restriction.started),
                                                  restriction.started)
        scale_policy = policies.get(PatternType.SCALE_OSCILLATION)
        escalate_window = scale_policy.duration("escalateWindow", "24h") if scale_policy else datetime.timedelta(hours=24)
        recent = sum(
            1 for r in restrictions
            if r.strategy is Strategy.COOLING_PERIOD and r.scope == target_scope(event.target)
            and r.started > now - escalate_window
        )
        state = GateState(restrictions=[r for r in restrictions if r.until > now], recent_cooling_periods=recent)
        situation = Situation(proposed=event, now=now, history=history, actor_history=actor_history, resets=resets)
        hpa = await self.hpa_for(event.target) if self.hpa_for else None
        decision = decide(proposal=proposal, situation=situation, policies=policies, state=state, rules=self.rules,
                          hpa=hpa)
        if decision.strategy in (Strategy.ESCALATE_HUMAN, Strategy.ALTERNATIVE_ACTION):
            # Approvals and effectiveness matter only here; load them only when they can change the answer.
            alerts = [f"{event.target.namespace}/" + alert_name(pattern=f.pattern, target=event.target,
                                                               actor=event.actor, scope=f.scope)
                      for f in decision.findings]
            state = dataclasses.replace(state, approvals=await self.history.postgres.approvals(alerts))
            situation = dataclasses.replace(
                situation, target_effectiveness=await self.history.postgres.target_effectiveness(event.target))
            decision = decide(proposal=proposal, situation=situation, policies=policies, state=state,
                              rules=self.rules, hpa=hpa)
        return decision

    @contextlib.asynccontextmanager
    async def _serialized(self, proposal: Proposal) -> AsyncIterator[None]:
        """Decisions on one target (and one actor's budget) happen one at a time across replicas."""
        cache = self.history.cache
        target = proposal.event.target
        if cache is None or target is None or proposal.dry_run:
            yield
            return
        names = [f"target:{target.key}"]
        if proposal.username.startswith("system:serviceaccount:"):
            names.insert(0, f"actor:{proposal.username}")
        async with contextlib.AsyncExitStack() as stack:
            for name in names:  # always actor before target: one order, no deadlock
                try:
                    await stack.enter_async_context(cache.lock(name))
                except (LockTimeout, *CACHE_ERRORS) as exc:
                    logger.warning("deciding %s without the %s lock: %s", proposal.event.uid, name, exc)
            yield

    async def _remember(self, decision: Decision, *, now: datetime.datetime, latency_ms: float) -> None:
        postgres = self.history.postgres
        if decision.record:
            recorded = await self.history.record(decision.event, now=now)
            decision = dataclasses.replace(decision, event=recorded)
        if decision.restriction is not None:
            await postgres.add_restriction(decision.restriction)
        if decision.alert is not None:
            await postgres.upsert_detection(decision.alert, now=now)
        if decision.refused_by is not None:
            await postgres.count_refusal(decision.refused_by.alert, now=now)
        if decision.consume is not None:
            await postgres.consume_approval(decision.consume.alert, request_uid=decision.event.uid, at=now)
        await postgres.record_decision(decision, now=now, latency_ms=latency_ms)
        if self.on_remembered:
            self.on_remembered(decision)  # e.g. the OscillationAlert writer, off the hot path


def is_denied(result: GateResult) -> bool:
    return result.decision is not None and result.decision.outcome is Outcome.DENY
