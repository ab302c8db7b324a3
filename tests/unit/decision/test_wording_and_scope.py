"""Smaller promises of the decision: alerts of an actor are its own, a scale-type PipelineRun
respects a cooling period, spans under a minute are said in seconds, and people's warnings are
split, never cut."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from tests.unit.decision.test_decide import judge, policies
from tests.unit.detection.factories import CART, NOW, action, minutes, scale, target
from webhook.admission.extract import Proposal
from webhook.decision import Approval, GateState, Outcome, Restriction, decide
from webhook.decision.messages import WARNING_LIMIT, warning_lines
from webhook.decision.state import ActorScope, Applies, TargetScope, alert_name, changes_replicas, parse_scope
from webhook.detection import _wording
from webhook.detection.situation import Reach, Situation
from webhook.policy.actors import ActorRules
from webhook.policy.model import PatternType, Strategy

PROD_AGENT = "system:serviceaccount:prod:agent"
STAGING_AGENT = "system:serviceaccount:staging:agent"


def test_same_named_service_accounts_of_two_namespaces_have_two_alerts():
    names = {actor: alert_name(pattern=PatternType.CASCADING_FAILURE, target=CART, actor=actor,
                               scope=Reach.of_namespace("shop"))
             for actor in (PROD_AGENT, STAGING_AGENT, "system:serviceaccount:a-b:c", "system:serviceaccount:a:b-c")}
    assert len(set(names.values())) == 4
    assert names[PROD_AGENT].startswith("agent-prod-cascading-failure-")
    assert names[STAGING_AGENT].startswith("agent-staging-cascading-failure-")
    cluster = alert_name(pattern=PatternType.CASCADING_FAILURE, target=CART, actor=PROD_AGENT, scope=Reach.CLUSTER)
    assert cluster.startswith("agent-prod-cascading-failure-cluster-") and cluster != names[PROD_AGENT]
    # Deterministic: every replica names the same actor's alert alike.
    assert names[PROD_AGENT] == alert_name(pattern=PatternType.CASCADING_FAILURE, target=CART, actor=PROD_AGENT,
                                           scope=Reach.of_namespace("shop"))
    long = alert_name(pattern=PatternType.CASCADING_FAILURE, target=None, actor="x" * 400, scope=Reach.CLUSTER)
    assert len(long) <= 253 and not long.startswith("-")


def escalating_cascade(actor: str, approvals=()):
    """The fifth workload an actor restarts in namespace shop, under an escalate-human cascade policy."""
    history = [action("restart_pod", at=-10 + i, actor=actor, on=target(f"d{i}")) for i in range(4)]
    proposed = action("restart_pod", actor=actor, on=target("d4"))
    pols = policies(cascading_failure={"strategy": Strategy.ESCALATE_HUMAN})
    event = proposed.replace(actor=actor)
    proposal = Proposal(event=event, username=actor, groups=(), dry_run=False, labels=None)
    situation = Situation(proposed=event, now=NOW, history=[], actor_history=history)
    return decide(proposal=proposal, situation=situation, policies=pols, state=GateState(approvals=list(approvals)),
                  rules=ActorRules(), hpa=None)


def test_one_approval_releases_only_the_actor_whose_alert_it_approves():
    prod = escalating_cascade(PROD_AGENT)
    staging = escalating_cascade(STAGING_AGENT)
    assert prod.outcome is Outcome.DENY and staging.outcome is Outcome.DENY
    assert prod.alert.key != staging.alert.key
    approval = Approval(alert=prod.alert.key, approved_by="oncall", reason="planned rollout", approved_at=minutes(-1))
    assert escalating_cascade(PROD_AGENT, approvals=[approval]).outcome is Outcome.APPROVED
    assert escalating_cascade(STAGING_AGENT, approvals=[approval]).outcome is Outcome.DENY


COOLING = Restriction(pattern=PatternType.SCALE_OSCILLATION, strategy=Strategy.COOLING_PERIOD,
                      scope=TargetScope.of(CART), applies=Applies.REPLICAS, started=minutes(-5), until=minutes(25),
                      alert="shop/deployment-cart-scale-oscillation", evidence="2 direction reversals in 40m")


def test_a_pipelinerun_whose_action_is_a_scale_respects_the_cooling_period_of_its_target():
    state = GateState(restrictions=[COOLING])
    for action_type in ("scale_deployment", "scale_statefulset", "Scale-Deployment", "scale"):
        run = action(action_type, object_kind="PipelineRun")  # no replica counts: the pipeline scales later
        assert changes_replicas(run)
        refused = judge(run, history=[], state=state)
        assert refused.outcome is Outcome.DENY and refused.code == 429, action_type
        assert refused.refused_by == COOLING and "cooling period until" in refused.message
    for action_type in ("restart_deployment", "increase_resources", "escalate"):
        other = action(action_type, object_kind="PipelineRun")
        assert not changes_replicas(other)
        assert judge(other, history=[], state=state).outcome is Outcome.ALLOW


def test_spans_under_a_minute_are_said_in_seconds():
    start = NOW - datetime.timedelta(seconds=41)
    assert _wording.span(start, NOW) == "41s"
    assert _wording.span(NOW, NOW) == "1s"
    assert _wording.span(NOW - datetime.timedelta(seconds=59.9), NOW) == "59s"
    assert _wording.span(NOW - datetime.timedelta(seconds=60), NOW) == "1m"
    assert _wording.span(NOW - datetime.timedelta(minutes=41, seconds=30), NOW) == "41m"
    assert _wording.span(NOW - datetime.timedelta(hours=2, minutes=10), NOW) == "2h10m"
    decision = judge(scale(3, 5), history=[scale(3, 5, at=-0.7), scale(5, 3, at=-0.3)])
    assert "2 direction reversals in 42s (3→5→3→5)" in decision.message


def test_a_persons_refusal_is_split_into_warnings_with_the_until_and_the_alert():
    long_target = target("checkout-frontend-service", namespace="shop-production-europe-west")
    cooling = Restriction(pattern=PatternType.SCALE_OSCILLATION, strategy=Strategy.COOLING_PERIOD,
                          scope=TargetScope.of(long_target), applies=Applies.REPLICAS, started=minutes(-5),
                          until=minutes(25), evidence="2 direction reversals in 40m (3→5→3→5)",
                          alert="shop-production-europe-west/deployment-checkout-frontend-service-scale-oscillation")
    warned = judge(scale(5, 6, on=long_target), history=[], state=GateState(restrictions=[cooling]),
                   username="alice@example.com")
    assert warned.outcome is Outcome.WARN and warned.allowed
    lines = warned.response()["response"]["warnings"]
    assert len(lines) >= 2 and all(len(line) <= WARNING_LIMIT for line in lines)
    assert all(line.startswith("safety-gate: ") for line in lines)
    joined = " ".join(lines)
    assert "cooling period until 2026-11-21T21:25:00Z (1500s left)" in joined
    assert "see oscillationalert shop-production-europe-west/deployment-checkout-frontend-service-scale-oscillation" \
        in joined
    assert "…" not in joined


def test_warning_lines_keep_every_word_and_respect_the_limit():
    text = ("safety-gate: " + "; ".join(f"clause {i} " + "word " * (i * 7) for i in range(8))
            + "; " + "x" * 300)
    lines = warning_lines(text)
    assert all(len(line) <= WARNING_LIMIT for line in lines)
    words = [w for line in lines for w in line.removeprefix("safety-gate: ").replace(";", " ").split()]
    expected = text.removeprefix("safety-gate: ").replace(";", " ").split()
    assert "".join(words) == "".join(expected)  # the long word is split, nothing dropped
    assert warning_lines("safety-gate: short") == ["safety-gate: short"]


STORED_SCOPES = [
    "target/shop/Deployment/cart",
    "target//Node/worker-1",                                   # a cluster-scoped target
    "actor/system:serviceaccount:prod:agent/namespace/shop",
    "actor/system:serviceaccount:prod:agent/namespace/",       # an actor's budget on Nodes
    "actor/system:serviceaccount:prod:agent/cluster",
]


def test_stored_scopes_parse_and_render_unchanged():
    """Rows and Redis mirrors written before the scopes were typed must still be read alike."""
    for text in STORED_SCOPES:
        assert str(parse_scope(text)) == text
    assert parse_scope(STORED_SCOPES[0]) == TargetScope.of(CART)
    assert parse_scope(STORED_SCOPES[2]) == ActorScope(PROD_AGENT, Reach.of_namespace("shop"))
    assert parse_scope(STORED_SCOPES[4]) == ActorScope(PROD_AGENT, Reach.CLUSTER)
    for text in ("", "target/", "actor/x", "actor/x/namespace/a/b", "actor//cluster", "namespace/shop", "elsewhere"):
        with pytest.raises(ValueError):
            parse_scope(text)
    for text in ("target", "cluster", "namespace/shop", "namespace/"):
        assert str(Reach.parse(text)) == text
    with pytest.raises(ValueError):
        Reach.parse("namespaces/shop")
    with pytest.raises(ValueError):
        ActorScope(PROD_AGENT, Reach.TARGET)


def test_an_actor_restriction_refuses_that_actor_within_its_reach_only():
    block = Restriction(pattern=PatternType.CASCADING_FAILURE, strategy=Strategy.BLOCK_ACTION,
                        scope=ActorScope(PROD_AGENT, Reach.of_namespace("shop")), applies=Applies.ALL,
                        started=minutes(-1), until=minutes(59), alert="shop/agent-prod-cascading-failure-x",
                        evidence="5 workloads in namespace shop")
    assert block.refuses(action("restart_pod", actor=PROD_AGENT), now=NOW)
    assert not block.refuses(action("restart_pod", actor=STAGING_AGENT), now=NOW)
    assert not block.refuses(action("restart_pod", actor=PROD_AGENT, on=target("cart", namespace="web")), now=NOW)
    assert not block.refuses(action("restart_pod", actor=PROD_AGENT), now=minutes(60))
    everywhere = dataclasses.replace(block, scope=ActorScope(PROD_AGENT, Reach.CLUSTER))
    assert everywhere.refuses(action("restart_pod", actor=PROD_AGENT, on=target("cart", namespace="web")), now=NOW)
    assert block.reach == Reach.of_namespace("shop") and COOLING.reach == Reach.TARGET
    for restriction in (block, everywhere, COOLING):
        as_json = restriction.to_json()
        assert isinstance(as_json["scope"], str)
        assert Restriction.from_json(as_json) == restriction
