"""One admission request, end to end: extract → serialize → load → decide → remember → answer.

This is the only place where the pure layers meet the stores. The server, ``safety-gate
explain``/``replay`` and the MCP tools all go through ``Gate.review`` or ``Gate.evaluate``,
so they cannot disagree about a verdict.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.admission import responses
from webhook.admission.extract import Proposal, extract
from webhook.admission.review import AdmissionRequest
from webhook.decision.decide import Decision, Outcome, decide, prepare, retry_later, screen, unchecked
from webhook.decision.state import ActorScope, GateState, Restriction, RestrictionScope, TargetScope, alert_name
from webhook.detection.detect import detect_all
from webhook.detection.registry import Need, needed_after, needed_before
from webhook.detection.situation import Reach, Situation
from webhook.engine.proposals import proposed_change
from webhook.policy.actors import ActorRules
from webhook.policy.model import PatternType, Strategy
from webhook.policy.resolved import PatternPolicy, PolicySet
from webhook.store.effects import Effects
from webhook.store.errors import Gap, LockBusy, Locking, StoresUnavailable, worst
from webhook.store.history import DecisionReads, HistoryStore

logger = logging.getLogger(__name__)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class GateResult:
    """What happened to one request: the response body plus what observability needs."""

    response: dict[str, Any]
    decision: Decision | None     # None: not a gated request (allowed, not recorded)
    latency_ms: float
    dry_run: bool = False
    degraded: str | None = None   # a ``Gap`` value: what the decision was taken without

    @property
    def degraded_mode(self) -> str:
        """What the gate did about it: decided anyway, failed open or closed, or asked for a retry."""
        outcome = self.decision.outcome if self.decision else None
        if outcome in (Outcome.FAIL_OPEN, Outcome.FAIL_CLOSED, Outcome.RETRY):
            return outcome.value
        return "decided"


class Gate:
    def __init__(
        self,
        *,
        history: HistoryStore,
        policies: Callable[[], PolicySet],
        rules: ActorRules,
        excluded_namespaces: frozenset[str] = frozenset({"kube-system"}),
        fail_closed: bool = False,
        clock: Callable[[], datetime.datetime] = utcnow,
        on_decision: Callable[[GateResult], None] | None = None,
        on_remembered: Callable[[Decision], None] | None = None,
        labels_for: Callable[[TargetRef], Awaitable[Mapping[str, str] | None]] | None = None,
        hpa_for: Callable[[TargetRef], Awaitable[str | None]] | None = None,
        context_for: Callable[[Proposal], Awaitable[Proposal]] | None = None,
        eviction_for: Callable[[Proposal], Awaitable[Proposal]] | None = None,
        cluster_namespace: str = "default",
    ) -> None:
        self.history = history
        self.policies = policies
        self.rules = rules
        self.excluded_namespaces = excluded_namespaces
        self.fail_closed = fail_closed
        self.clock = clock
        self.on_decision = on_decision
        self.on_remembered = on_remembered
        self.labels_for = labels_for
        self.hpa_for = hpa_for
        self.context_for = context_for  # e.g. Kubernaut's WorkflowExecution behind a PipelineRun
        self.eviction_for = eviction_for  # an evicted pod's workload, or its cordoned node
        self.cluster_namespace = cluster_namespace  # alerts of cluster-scoped targets (Nodes): the gate's

    async def review(self, request: AdmissionRequest, *, record: bool = True) -> GateResult:
        """Decide one admission request. ``record=False`` computes the same answer and remembers nothing."""
        started = time.perf_counter()
        now = self.clock()
        proposal = self._gated(request, now=now)
        if proposal is None:
            return GateResult(response=responses.allowed(request.uid), decision=None,
                              latency_ms=(time.perf_counter() - started) * 1000, dry_run=request.dryRun)
        if not record:
            proposal = dataclasses.replace(proposal, dry_run=True)
        if self.context_for is not None and proposal.workflow_execution is not None:
            proposal = await self.context_for(proposal)  # bounded; before the lock, which it must not hold up
        if self.eviction_for is not None and proposal.pod_to_resolve is not None:
            proposal = await self.eviction_for(proposal)  # bounded, cached; the lock is on its target
        actor_class = self.rules.classify(proposal.username, proposal.groups)
        gaps: set[Gap] = set()
        try:
            try:
                # Policies never depend on history: resolved before the lock (a label lookup must not
                # hold it up), so the history they need can be read in the round trip that takes it.
                target, policies, reads = proposal.event.target, None, None
                if target is not None:
                    policies = await self._policies_for(proposal, target)
                    reads = self._reads(proposal, target, policies, now=self.clock())
                # Only automation can be refused, so only its decisions must never run unlocked;
                # people and observed actors go ahead past a busy lock (and are recorded).
                async with self.history.serialized(self._lock_names(proposal), reads=reads,
                                                   required=actor_class is ActorClass.AUTOMATION) as locking:
                    if locking is Locking.BUSY:
                        gaps.add(Gap.LOCK_BUSY)
                    decision = await self._decide(proposal, gaps=gaps, started=started, policies=policies)
            except LockBusy as busy:
                gaps.add(Gap.LOCK_BUSY)
                logger.warning("%s: %s; answered retryable", request.uid, busy)
                decision = retry_later(proposal, actor_class=actor_class, retry_after=LOCK_RETRY_AFTER,
                                       why="another decision on this target or actor is still running")
                await self._remember(decision, now=self.clock(), started=started, degraded=Gap.LOCK_BUSY)
        except StoresUnavailable:
            gaps.add(Gap.UNAVAILABLE)
            decision = unchecked(proposal, fail_closed=self.fail_closed, actor_class=actor_class)
            if proposal.dry_run:
                decision = decision.without_effects()
            await self._remember(decision, now=now, started=started, degraded=Gap.UNAVAILABLE)
        if self.history.confirming and decision.record and decision.allowed and not decision.dry_run:
            proposed = proposed_change(request, decision.event)
            if proposed is not None:  # before answering: the watch can only see the change after that
                await self.history.propose(proposed)
        degraded = worst(gaps)
        result = GateResult(response=responses.review(request.uid, decision.verdict()), decision=decision,
                            latency_ms=(time.perf_counter() - started) * 1000, dry_run=proposal.dry_run,
                            degraded=degraded.value if degraded else None)
        if self.on_decision:
            self.on_decision(result)
        return result

    def _gated(self, request: AdmissionRequest, *, now: datetime.datetime) -> Proposal | None:
        """The change this request proposes, or None when the gate does not judge it (not an action
        it knows, or in an excluded namespace): allowed, and not recorded."""
        proposal = extract(request, now=now)
        if proposal is None or (request.namespace or "") in self.excluded_namespaces:
            return None
        return proposal

    async def remember_unchecked(self, request: AdmissionRequest, *, fail_closed: bool) -> None:
        """After ``review`` failed unexpectedly, record the unchecked answer the request gets instead,
        so an admitted change still counts as history (DESIGN §7: an admitted action is never lost).

        Idempotent by request uid: when the failure came after the decision was written (in an
        observer, say), nothing is written twice."""
        started = time.perf_counter()
        now = self.clock()
        proposal = self._gated(request, now=now)
        if proposal is None or proposal.dry_run:
            return
        actor_class = self.rules.classify(proposal.username, proposal.groups)
        decision = unchecked(proposal, fail_closed=fail_closed, actor_class=actor_class, why="the gate failed")
        await self._remember(decision, now=now, started=started, degraded=Gap.GATE_ERROR)

    async def _decide(self, proposal: Proposal, *, gaps: set[Gap], started: float,
                      policies: dict[PatternType, PatternPolicy] | None) -> Decision:
        # Time is read inside the lock, so the order of decisions on a target is the order
        # of their timestamps, across replicas.
        now = self.clock()
        proposal = dataclasses.replace(proposal, event=proposal.event.replace(at=now))
        decision = await self.evaluate(proposal, now=now, gaps=gaps, policies=policies)
        gap = self.history.mode().gap
        if gap is not None:
            gaps.add(gap)
        decision = with_gaps(decision, gaps=gaps, fail_closed=self.fail_closed, proposal=proposal)
        await self._remember(decision, now=now, started=started, degraded=worst(gaps))
        return decision

    async def evaluate(self, proposal: Proposal, *, now: datetime.datetime, gaps: set[Gap] | None = None,
                       policies: dict[PatternType, PatternPolicy] | None = None) -> Decision:
        """The decision for a proposal against current history; nothing is written. What the
        history was missing is added to ``gaps``. ``policies``: the target's, when already resolved.

        One pass: screen (bypass, observed actors, restrictions in force), detect once, load only
        what the triggered findings need (``registry.needed_after``), then judge once."""
        target = proposal.event.target
        if target is None:
            event = prepare(proposal, rules=self.rules, history=())
            return decide(proposal=proposal, situation=Situation(proposed=event, now=now), policies={},
                          state=GateState(), rules=self.rules)
        if policies is None:
            policies = await self._policies_for(proposal, target)
        wanted = self._reads(proposal, target, policies, now=now)
        actor = proposal.event.actor
        # Exactly the scopes that can refuse this event (Restriction.refuses): the target, and the
        # actor cluster-wide or in the target's namespace. An index lookup each, however many
        # restrictions other actors and namespaces have.
        scopes: list[RestrictionScope] = [TargetScope.of(target), ActorScope(actor, Reach.CLUSTER),
                                          ActorScope(actor, Reach.of_namespace(target.namespace))]
        # The three reads are independent: one wait for all of them instead of three in a row
        # (Redis, Redis, PostgreSQL), which was most of a decision's latency (issue 15). Under
        # ``serialized`` the two windows usually came with the locks and answer at once.
        target_read = asyncio.ensure_future(self.history.target_events(target, since=wanted.target_since, now=now,
                                                                       gaps=gaps))
        restrictions_read = asyncio.ensure_future(self.history.restrictions(scopes=scopes, actor=None, now=now,
                                                                            gaps=gaps))
        actor_read = None
        if wanted.actor_since is not None:
            actor_read = asyncio.ensure_future(self.history.actor_events(actor, since=wanted.actor_since, now=now,
                                                                         gaps=gaps))
        reads: list[asyncio.Future[Any]] = [read for read in (target_read, restrictions_read, actor_read) if read]
        await asyncio.wait(reads)  # all of them finish (or fail) before any failure is raised
        for read in reads:
            read.exception()  # each failure seen, so none is reported as never retrieved
        history, restrictions = target_read.result(), restrictions_read.result()
        actor_history: list[ActionEvent] = actor_read.result() if actor_read is not None else []
        event = prepare(proposal, rules=self.rules, history=history)
        state = GateState.remembered(restrictions, policies=policies, target=target, now=now)
        situation = Situation(proposed=event, now=now, history=history, actor_history=actor_history,
                              resets=_resets(restrictions, now=now))
        screened = screen(proposal=proposal, situation=situation, policies=policies, state=state, rules=self.rules)
        if screened is not None:
            return screened.without_effects() if proposal.dry_run else screened
        findings = detect_all(situation, policies)
        triggered = [f for f in findings if f.triggered]
        needs = needed_after(triggered)
        if Need.APPROVALS in needs:
            home = target.home(self.cluster_namespace)
            alerts = [f"{home}/" + alert_name(pattern=f.pattern, target=target, actor=event.actor, scope=f.scope)
                      for f in triggered]
            state = dataclasses.replace(state, approvals=await self.history.approvals(alerts))
        if Need.EFFECTIVENESS in needs:
            situation = dataclasses.replace(situation,
                                            target_effectiveness=await self.history.target_effectiveness(target))
        hpa = None
        if Need.HPA_NAME in needs and self.hpa_for and triggered and triggered[0].counterpart:
            hpa = await self.hpa_for(target)
        return decide(proposal=proposal, situation=situation, policies=policies, state=state, rules=self.rules,
                      hpa=hpa, cluster_namespace=self.cluster_namespace, findings=findings)

    async def _policies_for(self, proposal: Proposal, target: TargetRef) -> dict[PatternType, PatternPolicy]:
        policy_set = self.policies()
        labels = proposal.labels
        if labels is None and self.labels_for and policy_set.needs_labels(target):
            labels = await self.labels_for(target)  # the scale subresource carries no labels
        return policy_set.for_target(target, labels=labels)

    def _reads(self, proposal: Proposal, target: TargetRef, policies: dict[PatternType, PatternPolicy], *,
               now: datetime.datetime) -> DecisionReads:
        """The history a decision needs: the target's longest pattern window (3 h at least) and,
        for automation with an actor budget (cascading failure), the actor's longest budget window."""
        horizon = max([p.window for p in policies.values()] + [datetime.timedelta(hours=3)])
        budgets = [policies[p] for p in policies if Need.ACTOR_HISTORY in needed_before([p])]
        if not budgets or self.rules.classify(proposal.username, proposal.groups) is not ActorClass.AUTOMATION:
            return DecisionReads(target=target, target_since=now - horizon)
        return DecisionReads(target=target, target_since=now - horizon, actor=proposal.event.actor,
                             actor_since=now - max(policy.window for policy in budgets))

    @staticmethod
    def _lock_names(proposal: Proposal) -> list[str]:
        """Decisions on one target — and on one automation actor's budget — happen one at a time,
        always actor before target so two requests can never wait on each other."""
        target = proposal.event.target
        if target is None or proposal.dry_run:
            return []
        names = [f"target:{target.key}"]
        if proposal.username.startswith("system:serviceaccount:"):
            names.insert(0, f"actor:{proposal.username}")
        return names

    async def _remember(self, decision: Decision, *, now: datetime.datetime, started: float,
                        degraded: Gap | None) -> None:
        if not decision.dry_run:
            effects = Effects.of(decision, now=now, latency_ms=(time.perf_counter() - started) * 1000,
                                 degraded=degraded.value if degraded else None)
            await self.history.remember(effects, now=now)
            if self.on_remembered:
                self.on_remembered(decision)  # e.g. the OscillationAlert writer, off the hot path


LOCK_RETRY_AFTER = 1  # seconds: a lock is held for one decision, a few milliseconds


def with_gaps(decision: Decision, *, gaps: set[Gap], fail_closed: bool, proposal: Proposal) -> Decision:
    """A decision taken without the target's full window says so (DESIGN §7, issue 12).

    Refusals stand: they were found in what history there was. An admission of automation from an
    incomplete window follows ``failClosed``; otherwise, and for people, it carries a warning.
    Observed actors are never refused.
    """
    incomplete = [gap for gap in gaps if gap.incomplete]
    if (not incomplete or not decision.allowed or decision.outcome is Outcome.FAIL_OPEN
            or decision.event.actor_class is ActorClass.OBSERVED):  # never judged: nothing to qualify
        return decision
    why = "PostgreSQL is down and the cache does not hold this target's recent history"
    if fail_closed and decision.event.actor_class is ActorClass.AUTOMATION:
        closed = unchecked(proposal, fail_closed=True, actor_class=decision.event.actor_class, why=why)
        return closed.without_effects() if decision.dry_run else closed
    note = f"safety-gate: decided without the full history ({why}); this change may be part of a pattern"
    return dataclasses.replace(decision, warnings=(*decision.warnings, note))


def _resets(restrictions: list[Restriction], *, now: datetime.datetime) -> dict[PatternType, datetime.datetime]:
    """After a cooling period ends, the changes before it no longer count (DESIGN §4)."""
    resets: dict[PatternType, datetime.datetime] = {}
    for restriction in restrictions:
        if restriction.strategy is Strategy.COOLING_PERIOD and restriction.until <= now:
            resets[restriction.pattern] = max(resets.get(restriction.pattern, restriction.started),
                                              restriction.started)
    return resets
