"""The decision: a proposal, its situation and the remembered state in; a verdict and the effects
to carry out (record, restrict, alert, consume an approval) out. Pure — the caller does the I/O.

Order of judgement:
1. bypass by an allowed subject, untargeted actions and observed actors: allowed and recorded;
2. a cooling period or block already in force refuses the change;
3. the detectors run; the strongest triggered finding chooses the strategy;
4. the enforcement (the policy's, or ``warn`` for people) turns it into a refusal, warnings or a
   recorded would-deny.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from webhook.actions.model import ActionEvent, ActorClass, TargetRef
from webhook.admission import responses
from webhook.admission.extract import Proposal
from webhook.decision import messages
from webhook.decision.state import (
    ActorScope,
    Approval,
    GateState,
    Restriction,
    RestrictionScope,
    TargetScope,
    alert_name,
    enforcement_for_person,
)
from webhook.detection.detect import detect_all
from webhook.detection.registry import Scope, spec_of
from webhook.detection.resource_thrashing import best_alternative
from webhook.detection.situation import Finding, Severity, Situation
from webhook.policy.actors import ActorRules
from webhook.policy.model import Enforcement, PatternType, Strategy
from webhook.policy.resolved import PatternPolicy


class Outcome(str, enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    WARN = "warn"
    DRYRUN_DENY = "dryrun-deny"
    BYPASS = "bypass"
    APPROVED = "approved"
    FAIL_OPEN = "fail-open"      # no store could answer: allowed unchecked, with a warning
    FAIL_CLOSED = "fail-closed"  # no store could answer and failClosed is set: refused
    RETRY = "retry"              # the decision could not be taken safely now (lock busy): 429, retry


class Phase:
    ACTIVE = "Active"
    PENDING_APPROVAL = "PendingApproval"
    APPROVED = "Approved"
    EXPIRED = "Expired"
    RESOLVED = "Resolved"


@dataclasses.dataclass(frozen=True)
class AlertUpdate:
    """What to write into the OscillationAlert (or ``oscillation_detections`` without a cluster)."""

    namespace: str
    name: str
    pattern: PatternType
    severity: Severity
    confidence: float
    strategy: Strategy
    enforcement: Enforcement
    target: TargetRef | None
    actor: str
    message: str
    summary: str
    evidence: tuple[ActionEvent, ...]
    phase: str
    denied: bool
    new_occurrence: bool
    cooldown_until: datetime.datetime | None = None
    alternative: str | None = None
    approval_used_by: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Decision:
    outcome: Outcome
    event: ActionEvent
    code: int | None = None
    message: str | None = None
    warnings: tuple[str, ...] = ()
    record: bool = True                    # the event is admitted history
    findings: tuple[Finding, ...] = ()     # triggered findings, strongest first
    strategy: Strategy | None = None
    restriction: Restriction | None = None  # a new cooling period or block to remember
    refused_by: Restriction | None = None   # an existing one that refused this request
    alert: AlertUpdate | None = None
    consume: Approval | None = None
    dry_run: bool = False                   # request.dryRun: answer only, remember nothing at all
    retry_after: int | None = None          # seconds, for a refusal the caller should simply retry

    @property
    def allowed(self) -> bool:
        return self.outcome not in (Outcome.DENY, Outcome.FAIL_CLOSED, Outcome.RETRY)

    @property
    def winner(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def pattern(self) -> str:
        if self.winner:
            return self.winner.pattern.value
        return self.refused_by.pattern.value if self.refused_by else ""

    def verdict(self) -> responses.Verdict:
        """The answer, typed; the edge turns it into the AdmissionReview."""
        warnings = messages.split_warnings(self.warnings)  # each ≤120 characters, nothing cut
        if self.allowed:
            return responses.Verdict.warn(*warnings)
        assert self.code is not None and self.message is not None
        return responses.Verdict.deny(code=self.code, message=self.message, warnings=warnings,
                                      retry_after=self.retry_after)

    def response(self, *, uid: str | None = None) -> dict[str, Any]:
        """The AdmissionReview for ``uid`` (the request's: one pod deletion is admitted several times
        by the API server, and its event keeps one uid so it is recorded once)."""
        return responses.review(uid or self.event.uid, self.verdict())

    def without_effects(self) -> Decision:
        """``request.dryRun``: the same answer, nothing remembered (DESIGN §5)."""
        return dataclasses.replace(self, record=False, restriction=None, alert=None, consume=None, dry_run=True)


def unchecked(proposal: Proposal, *, fail_closed: bool, actor_class: ActorClass,
              why: str = "PostgreSQL and Redis unavailable") -> Decision:
    """The answer when the history cannot be read (DESIGN §3, §7): allow with a warning and record
    the action for later — or, with ``failClosed``, refuse automation. Observed actors (the HPA,
    system:masters) are never refused, in any mode; people are never refused by the gate's
    patterns, so failing closed on them would be stricter blind than sighted."""
    event = proposal.event.replace(actor_class=actor_class)
    if fail_closed and actor_class is ActorClass.AUTOMATION:
        return Decision(outcome=Outcome.FAIL_CLOSED, event=event, code=503, record=False,
                        message=f"safety-gate: cannot read action history ({why}); "
                                "failClosed is set, so automated changes are refused until it is back")
    return Decision(outcome=Outcome.FAIL_OPEN, event=event,
                    warnings=(f"safety-gate: action history unavailable ({why}); allowed unchecked (fail-open)",))


def retry_later(proposal: Proposal, *, actor_class: ActorClass, retry_after: int, why: str) -> Decision:
    """An automation change that could not be decided safely right now (its lock stayed busy):
    a retryable 429, never an unchecked admission."""
    event = proposal.event.replace(actor_class=actor_class)
    return Decision(outcome=Outcome.RETRY, event=event, code=429, record=False, retry_after=retry_after,
                    message=f"safety-gate: {why}; retry in {retry_after}s")


def prepare(proposal: Proposal, *, rules: ActorRules, history: Sequence[ActionEvent]) -> ActionEvent:
    """Classify the actor, tell a rollback (an image seen before on this target) from an update, and
    complete a scaling PipelineRun that names only the replicas it wants with the count it changes
    from: the target's last known one, so the run counts toward the scale patterns like a scale."""
    event = proposal.event.replace(actor_class=rules.classify(proposal.username, proposal.groups))
    if (event.object_kind == "PipelineRun" and event.replicas_after is not None and event.replicas_before is None
            and event.action_type.lower().startswith("scale")):
        known = [past.replicas_after for past in history if past.replicas_after is not None]
        if known:
            event = event.replace(replicas_before=known[-1])
    if event.action_type in ("update_deployment", "update_statefulset") and proposal.image_candidates:
        seen = {image for past in history for change in past.image_changes
                for image in (change.before, change.after) if image}
        if any(image in seen for image in proposal.image_candidates):
            event = event.replace(action_type=event.action_type.replace("update_", "rollback_"))
    return event


def decide(
    *,
    proposal: Proposal,
    situation: Situation,
    policies: Mapping[PatternType, PatternPolicy],
    state: GateState,
    rules: ActorRules,
    hpa: str | None = None,
    cluster_namespace: str = "default",
    findings: Sequence[Finding] | None = None,
) -> Decision:
    """``cluster_namespace``: where alerts of cluster-scoped targets (Nodes) live, the gate's own.

    ``findings``: what ``detect_all(situation, policies)`` found, when the caller already ran it
    (the engine does, to load only what they need before this one judgement); else run here."""
    decision = screen(proposal=proposal, situation=situation, policies=policies, state=state, rules=rules)
    if decision is None:
        found = detect_all(situation, policies) if findings is None else findings
        decision = _judge(proposal=proposal, situation=situation, findings=found, state=state, rules=rules,
                          hpa=hpa, cluster_namespace=cluster_namespace)
    return decision.without_effects() if proposal.dry_run else decision


def screen(*, proposal: Proposal, situation: Situation, policies: Mapping[PatternType, PatternPolicy],
           state: GateState, rules: ActorRules) -> Decision | None:
    """The answer that needs no detection (steps 1 and 2), or None: detect, then judge."""
    event, now = situation.proposed, situation.now
    warnings = _bypass_warnings(proposal=proposal, event=event, rules=rules)
    if event.bypass and not warnings:
        return Decision(outcome=Outcome.BYPASS, event=event,
                        warnings=(f"safety-gate: bypassed by {event.actor}: {event.bypass}",))
    event = event.replace(bypass=None) if warnings else event
    if event.target is None or event.actor_class is ActorClass.OBSERVED:
        return Decision(outcome=Outcome.ALLOW, event=event, warnings=tuple(warnings))
    refusing = [r for r in state.restrictions if r.refuses(event, now=now)]
    if refusing:
        return _refuse_by_restriction(event=event, now=now, restriction=_strongest_restriction(refusing),
                                      policies=policies, warnings=warnings)
    return None


def _bypass_warnings(*, proposal: Proposal, event: ActionEvent, rules: ActorRules) -> list[str]:
    if event.bypass and not rules.may_bypass(proposal.username, proposal.groups):
        return [f"safety-gate: bypass ignored: {event.actor} is not in bypassSubjects"]
    return []


def _judge(*, proposal: Proposal, situation: Situation, findings: Sequence[Finding], state: GateState,
           rules: ActorRules, hpa: str | None, cluster_namespace: str) -> Decision:
    event, now = situation.proposed, situation.now
    warnings = _bypass_warnings(proposal=proposal, event=event, rules=rules)
    event = event.replace(bypass=None) if warnings else event
    triggered = tuple(f for f in findings if f.triggered)
    if not triggered or event.target is None:  # untargeted changes were admitted by the screen
        warnings.extend(messages.near_miss(f, event.target) for f in findings if not f.triggered)
        return Decision(outcome=Outcome.ALLOW, event=event, warnings=tuple(warnings))
    return _apply_strategy(event=event, target=event.target, now=now, findings=triggered, situation=situation,
                           state=state, hpa=hpa, warnings=warnings, cluster_namespace=cluster_namespace)


def _strongest_restriction(restrictions: Sequence[Restriction]) -> Restriction:
    return max(restrictions, key=lambda r: (r.strategy.strength, r.until))


def _effective_enforcement(event: ActionEvent, policy_enforcement: Enforcement) -> Enforcement:
    if event.actor_class is ActorClass.PERSON:
        return enforcement_for_person(policy_enforcement)
    return policy_enforcement


def _refuse_by_restriction(*, event: ActionEvent, now: datetime.datetime, restriction: Restriction,
                           policies: Mapping[PatternType, PatternPolicy], warnings: list[str]) -> Decision:
    is_block = restriction.strategy is Strategy.BLOCK_ACTION
    message = messages.refused_by_restriction(
        kind="blocked" if is_block else "cooling period", pattern=restriction.pattern.value, target=event.target,
        evidence=restriction.evidence, until=restriction.until, now=now, alert=restriction.alert,
        scope=restriction.reach,
    )
    if event.actor_class is ActorClass.PERSON:
        return Decision(outcome=Outcome.WARN, event=event, refused_by=restriction,
                        warnings=(*warnings, message))
    return Decision(
        outcome=Outcome.DENY, event=event, code=403 if is_block else 429, message=message,
        warnings=tuple(warnings), record=False, refused_by=restriction,
    )


def _apply_strategy(*, event: ActionEvent, target: TargetRef, now: datetime.datetime, findings: tuple[Finding, ...],
                    situation: Situation, state: GateState, hpa: str | None, warnings: list[str],
                    cluster_namespace: str = "default") -> Decision:
    winner, others = findings[0], findings[1:]
    policy, spec = winner.policy, spec_of(winner.pattern)
    alert_ns = target.home(cluster_namespace)
    alert = alert_name(pattern=winner.pattern, target=target, actor=event.actor, scope=winner.scope)
    alert_key = f"{alert_ns}/{alert}"
    enforcement = _effective_enforcement(event, policy.enforcement)

    strategy = policy.strategy
    escalation_reason = ""
    if strategy is Strategy.COOLING_PERIOD:
        escalate_after = policy.integer("escalateAfter", 3)
        earlier = state.cooling_periods(winner.pattern)
        if earlier + 1 >= escalate_after:
            strategy = Strategy.ESCALATE_HUMAN
            escalation_reason = (
                f"; cooling period {earlier + 1} within "
                f"{policy.parameters.get('escalateWindow', '24h')}"
            )

    restriction: Restriction | None = None
    cooldown_until: datetime.datetime | None = None
    code = 403
    phase = Phase.ACTIVE
    alternative: str | None = None
    if strategy is Strategy.COOLING_PERIOD:
        cooldown = policy.duration("cooldownPeriod", "30m")
        # The period runs from the last earlier change that formed the pattern (the evidence ends
        # with the proposed change).
        started = winner.evidence[-2].at if len(winner.evidence) > 1 else now
        cooldown_until = started + cooldown
        if cooldown_until <= now:
            # The agent already waited out a period measured from its last change; start one now.
            started, cooldown_until = now, now + cooldown
        restriction = Restriction(
            pattern=winner.pattern, strategy=strategy, scope=TargetScope.of(target),
            applies=spec.refuses, started=started, until=cooldown_until, alert=alert_key,
            evidence=winner.summary, target_key=target.key,
        )
        code = 429
        message = messages.cooling(finding=winner, target=target, until=cooldown_until, now=now, alert=alert_key,
                                   others=others)
    elif strategy is Strategy.BLOCK_ACTION:
        cooldown_until = now + policy.duration("blockDuration", "60m")
        scope: RestrictionScope = (ActorScope(event.actor, winner.scope) if spec.scope is Scope.ACTOR
                                   else TargetScope.of(target))
        restriction = Restriction(
            pattern=winner.pattern, strategy=strategy, scope=scope, applies=spec.refuses, started=now,
            until=cooldown_until, alert=alert_key, evidence=winner.summary, target_key=target.key,
        )
        message = messages.blocked(finding=winner, target=target, until=cooldown_until, now=now, alert=alert_key,
                                   hpa=hpa, others=others)
    elif strategy is Strategy.ALTERNATIVE_ACTION:
        # Effectiveness is loaded once a finding triggered, after detection: name the alternative here.
        alternative = winner.alternative or best_alternative(situation.target_effectiveness,
                                                             exclude=event.action_type)
        message = messages.alternative(finding=winner, target=target, alert=alert_key, suggestion=alternative,
                                       others=others)
    else:
        phase = Phase.PENDING_APPROVAL
        message = messages.escalated(finding=winner, target=target, alert=alert_key, reason=escalation_reason,
                                     others=others)
        validity = policy.duration("approvalValidity", "1h")
        approval = next((a for a in state.approvals if a.alert == alert_key and a.usable(now=now, validity=validity)),
                        None)
        if approval is not None and enforcement is Enforcement.ENFORCE:
            update = _alert_update(
                alert_ns, alert, winner, strategy, enforcement, event, message, phase=Phase.APPROVED, denied=False,
                approval_used_by=event.uid,
            )
            note = f"safety-gate: allowed once by the approval of {approval.approved_by}: {approval.reason}"
            return Decision(outcome=Outcome.APPROVED, event=event, warnings=(*warnings, note), findings=findings,
                            strategy=strategy, alert=update, consume=approval)

    if enforcement is Enforcement.ENFORCE:
        update = _alert_update(alert_ns, alert, winner, strategy, enforcement, event, message, phase=phase,
                               denied=True, cooldown_until=cooldown_until, alternative=alternative)
        return Decision(outcome=Outcome.DENY, event=event, code=code, message=message, warnings=tuple(warnings),
                        record=False, findings=findings, strategy=strategy, restriction=restriction, alert=update)

    update = _alert_update(alert_ns, alert, winner, strategy, enforcement, event, message, phase=Phase.ACTIVE,
                           denied=False, alternative=alternative)
    if enforcement is Enforcement.WARN:
        notes = [messages.would_deny(f, target) for f in findings]
        return Decision(outcome=Outcome.WARN, event=event, warnings=(*warnings, *notes), findings=findings,
                        strategy=strategy, alert=update)
    return Decision(outcome=Outcome.DRYRUN_DENY, event=event, warnings=tuple(warnings), findings=findings,
                    strategy=strategy, alert=update, message=message)


def _alert_update(namespace: str, name: str, finding: Finding, strategy: Strategy, enforcement: Enforcement,
                  event: ActionEvent, message: str, *, phase: str, denied: bool,
                  cooldown_until: datetime.datetime | None = None, alternative: str | None = None,
                  approval_used_by: str | None = None) -> AlertUpdate:
    return AlertUpdate(
        namespace=namespace, name=name, pattern=finding.pattern, severity=finding.severity,
        confidence=finding.confidence, strategy=strategy, enforcement=enforcement, target=event.target,
        actor=event.actor, message=message, summary=finding.summary, evidence=finding.evidence, phase=phase,
        denied=denied, new_occurrence=True, cooldown_until=cooldown_until, alternative=alternative,
        approval_used_by=approval_used_by,
    )
