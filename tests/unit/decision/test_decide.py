"""The pure decision: restrictions, actor classes, strategies, enforcement, approvals, dry-run."""

from __future__ import annotations

import dataclasses
import datetime

from tests.unit.detection.factories import AGENT, CART, HPA, NOW, minutes, resources, scale
from webhook.actions.model import ActorClass
from webhook.admission.extract import Proposal
from webhook.decision import Approval, GateState, Outcome, Restriction, decide
from webhook.decision.state import Applies, TargetScope
from webhook.detection.situation import Situation
from webhook.policy.actors import ActorRules
from webhook.policy.defaults import default_policies
from webhook.policy.model import Enforcement, PatternType, Strategy

RULES = ActorRules(bypass_subjects=("system:serviceaccount:ops:oncall",))
PERSON = "alice@example.com"
FLAPS = [scale(3, 5, at=-40), scale(5, 3, at=-20)]
SCALE_TWICE = {PatternType.SCALE_OSCILLATION: 2}


def policies(**overrides):
    chosen = {p.pattern: p for p in default_policies()}
    for pattern, changes in overrides.items():
        key = PatternType(pattern.replace("_", "-"))
        chosen[key] = dataclasses.replace(chosen[key], **changes)
    return chosen


def judge(event, *, history=FLAPS, state=GateState(), dry_run=False, username=None, groups=(), hpa=None,
          pols=None):
    username = username or event.actor
    event = event.replace(actor=username, actor_class=RULES.classify(username, groups))
    proposal = Proposal(event=event, username=username, groups=tuple(groups), dry_run=dry_run, labels=None)
    situation = Situation(proposed=event, now=NOW, history=history)
    return decide(proposal=proposal, situation=situation, policies=pols or policies(), state=state, rules=RULES,
                  hpa=hpa)


def test_second_reversal_by_automation_starts_a_cooling_period_from_the_last_change():
    decision = judge(scale(3, 5))
    assert decision.outcome is Outcome.DENY and decision.code == 429
    assert decision.restriction.until == minutes(-20) + datetime.timedelta(minutes=30)
    assert decision.restriction.applies == Applies.REPLICAS
    assert "cooling period until 2026-11-21T21:10:00Z (600s left)" in decision.message
    assert "(3→5→3→5)" in decision.message
    assert "see oscillationalert shop/deployment-cart-scale-oscillation" in decision.message
    assert decision.record is False
    assert decision.alert.phase == "Active" and decision.alert.denied


def test_a_cooling_period_measured_from_an_old_change_starts_now_instead():
    history = [scale(3, 5, at=-100), scale(5, 3, at=-90)]
    decision = judge(scale(3, 5), history=history)
    assert decision.restriction.until == NOW + datetime.timedelta(minutes=30)


def test_people_are_warned_not_refused():
    decision = judge(scale(3, 5), username=PERSON)
    assert decision.outcome is Outcome.WARN and decision.allowed and decision.record
    assert decision.restriction is None
    assert all(len(w) <= 120 for w in decision.warnings)
    assert any("would deny" in w for w in decision.warnings)


def test_observed_controllers_are_recorded_and_never_denied():
    decision = judge(scale(3, 5), username=HPA)
    assert decision.outcome is Outcome.ALLOW and decision.record
    masters = judge(scale(3, 5), username="admin", groups=("system:masters",))
    assert masters.outcome is Outcome.ALLOW


def test_active_restriction_refuses_replica_changes_only():
    cooling = Restriction(pattern=PatternType.SCALE_OSCILLATION, strategy=Strategy.COOLING_PERIOD,
                          scope=TargetScope.of(CART), applies=Applies.REPLICAS, started=minutes(-5),
                          until=minutes(25), alert="shop/deployment-cart-scale-oscillation", evidence="2 reversals")
    state = GateState(restrictions=[cooling])
    refused = judge(scale(5, 6), history=[], state=state)
    assert refused.code == 429 and refused.refused_by == cooling and "1500s left" in refused.message
    restart = judge(scale(5, 5).replace(action_type="restart_pod"), history=[], state=state)
    assert restart.outcome is Outcome.ALLOW


def test_bypass_needs_an_allowed_subject():
    allowed = judge(scale(3, 5).replace(bypass="incident 7"), username="system:serviceaccount:ops:oncall")
    assert allowed.outcome is Outcome.BYPASS and allowed.record
    ignored = judge(scale(3, 5).replace(bypass="please"))
    assert ignored.outcome is Outcome.DENY
    assert any("bypass ignored" in w for w in ignored.warnings)


def test_request_dry_run_has_no_effects():
    decision = judge(scale(3, 5), dry_run=True)
    assert decision.outcome is Outcome.DENY
    assert (decision.record, decision.restriction, decision.alert, decision.consume) == (False, None, None, None)


def test_warn_and_dryrun_enforcement():
    warn = judge(scale(3, 5), pols=policies(scale_oscillation={"enforcement": Enforcement.WARN}))
    assert warn.outcome is Outcome.WARN and warn.restriction is None and warn.record
    dry = judge(scale(3, 5), pols=policies(scale_oscillation={"enforcement": Enforcement.DRYRUN}))
    assert dry.outcome is Outcome.DRYRUN_DENY and dry.allowed and dry.record and dry.message


def test_third_cooling_period_in_a_day_escalates():
    decision = judge(scale(3, 5), state=GateState(recent_cooling_periods=SCALE_TWICE))
    assert decision.strategy is Strategy.ESCALATE_HUMAN and decision.code == 403
    assert decision.alert.phase == "PendingApproval"
    assert "cooling period 3 within 24h" in decision.message
    assert "safety-gate approve shop/deployment-cart-scale-oscillation" in decision.message


def test_only_the_pattern_s_own_cooling_periods_escalate_it():
    others = GateState(recent_cooling_periods={PatternType.SCHEDULABILITY_OSCILLATION: 2,
                                               PatternType.RESOURCE_THRASHING: 5})
    decision = judge(scale(3, 5), state=others)
    assert decision.strategy is Strategy.COOLING_PERIOD and decision.code == 429


def test_an_approval_lets_one_escalated_action_through_within_its_validity():
    approval = Approval(alert="shop/deployment-cart-scale-oscillation", approved_by="bob", reason="fixed the leak",
                        approved_at=minutes(-10))
    state = GateState(recent_cooling_periods=SCALE_TWICE, approvals=[approval])
    passed = judge(scale(3, 5), state=state)
    assert passed.outcome is Outcome.APPROVED and passed.consume == approval and passed.record
    used = dataclasses.replace(approval, used_at=minutes(-1))
    assert judge(scale(3, 5), state=GateState(recent_cooling_periods=SCALE_TWICE, approvals=[used])).code == 403
    stale = dataclasses.replace(approval, approved_at=minutes(-61))
    assert judge(scale(3, 5), state=GateState(recent_cooling_periods=SCALE_TWICE, approvals=[stale])).code == 403


def test_controller_fight_blocks_and_names_the_hpa_and_the_other_patterns():
    history = [scale(3, 5, at=-30), scale(5, 3, at=-26, actor=HPA)]
    decision = judge(scale(3, 5), history=history, hpa="shop/cart")
    assert decision.winner.pattern is PatternType.CONTROLLER_FIGHT
    assert decision.code == 403 and decision.restriction.strategy is Strategy.BLOCK_ACTION
    assert "the HorizontalPodAutoscaler shop/cart manages replicas here" in decision.message
    assert "also matched: scale-oscillation" in decision.message


def test_alternative_action_names_the_suggestion_or_a_person():
    history = [resources("64Mi", "128Mi", at=-30), resources("128Mi", "64Mi", at=-20)]
    proposed = resources("64Mi", "128Mi")
    decision = judge(proposed, history=history)
    assert decision.winner.pattern is PatternType.RESOURCE_THRASHING and decision.code == 403
    assert "escalate to a person instead" in decision.message
    event = proposed.replace(actor=AGENT, actor_class=ActorClass.AUTOMATION)
    proposal = Proposal(event=event, username=AGENT, groups=(), dry_run=False, labels=None)
    situation = Situation(proposed=event, now=NOW, history=history,
                          target_effectiveness={"scale_deployment": 0.9, "restart_pod": 0.4})
    suggested = decide(proposal=proposal, situation=situation, policies=policies(), state=GateState(), rules=RULES)
    assert "try scale_deployment instead" in suggested.message


def test_responses_have_the_admission_shape():
    denied = judge(scale(3, 5)).response()
    assert denied["apiVersion"] == "admission.k8s.io/v1" and denied["kind"] == "AdmissionReview"
    assert denied["response"]["allowed"] is False and denied["response"]["status"]["code"] == 429
    allowed = judge(scale(3, 4), history=[]).response()
    assert allowed["response"] == {"uid": allowed["response"]["uid"], "allowed": True}


def test_an_image_seen_before_on_the_target_is_a_rollback():
    from webhook.actions.model import ImageChange
    from webhook.decision import prepare

    upgrade = scale(3, 3).replace(action_type="update_deployment", image_changes=(
        ImageChange(container="app", before="cart:1.0", after="cart:2.0"),))
    proposal = Proposal(event=scale(3, 3).replace(action_type="update_deployment"), username=AGENT, groups=(),
                        dry_run=False, labels=None, image_candidates=("cart:1.0",))
    assert prepare(proposal, rules=RULES, history=[upgrade]).action_type == "rollback_deployment"
    assert prepare(proposal, rules=RULES, history=[]).action_type == "update_deployment"
    fresh = Proposal(event=proposal.event, username=AGENT, groups=(), dry_run=False, labels=None,
                     image_candidates=("cart:3.0",))
    assert prepare(fresh, rules=RULES, history=[upgrade]).action_type == "update_deployment"
    sts = Proposal(event=proposal.event.replace(action_type="update_statefulset"), username=AGENT, groups=(),
                   dry_run=False, labels=None, image_candidates=("cart:1.0",))
    assert prepare(sts, rules=RULES, history=[upgrade]).action_type == "rollback_statefulset"
