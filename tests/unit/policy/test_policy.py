"""Policy documents: parsing, validation errors that name the field, scope matching and layering."""

from __future__ import annotations

import datetime

import pytest

from webhook.actions.model import ActorClass, TargetRef
from webhook.actions.quantities import parse_quantity
from webhook.policy import ActorRules, PolicyError, PolicySet, default_policies, load_policy_text
from webhook.policy.durations import DurationError, format_duration, parse_duration
from webhook.policy.model import Enforcement, PatternType, Strategy
from webhook.policy.provider import PolicyProvider

CART = TargetRef(namespace="shop", kind="Deployment", name="cart")
DOC = """
apiVersion: ai.prometheus-alerts-slm.io/v1
kind: OscillationPattern
metadata: {name: shop-scale}
spec:
  enforcementAction: warn
  patternDefinition:
    patternType: scale-oscillation
    detectionCriteria: {minOccurrences: 4, timeWindow: 30m, thresholds: {directionChanges: 3}}
  resourceScope: {resourceTypes: [deployments], namespaces: ["shop*"], labels: {tier: web}}
  preventionStrategy:
    strategy: block-action
    parameters: {blockDuration: 10m, escalateAfter: 5}
---
apiVersion: ai.prometheus-alerts-slm.io/v1
kind: OscillationPattern
metadata: {name: fight}
spec:
  patternDefinition:
    patternType: controller-fight
    detectionCriteria: {minOccurrences: 2, timeWindow: 1h}
  preventionStrategy: {strategy: cooling-period}
"""


def test_a_multi_document_file_parses_into_typed_policies():
    scale, fight = load_policy_text(DOC)
    assert scale.name == "shop-scale" and scale.source == "file"
    assert scale.pattern is PatternType.SCALE_OSCILLATION
    assert scale.window == datetime.timedelta(minutes=30) and scale.min_occurrences == 4
    assert scale.enforcement is Enforcement.WARN and scale.strategy is Strategy.BLOCK_ACTION
    assert scale.threshold("directionChanges", 2) == 3
    assert scale.duration("blockDuration", "60m") == datetime.timedelta(minutes=10)
    assert scale.integer("escalateAfter", 3) == 5  # YAML int accepted for a string parameter
    assert fight.enforcement is Enforcement.ENFORCE


@pytest.mark.parametrize("broken, words", [
    (DOC.replace("timeWindow: 30m", "timeWindow: soon"), "timeWindow"),
    (DOC.replace("strategy: block-action", "strategy: pray"), "strategy"),
    (DOC.replace("minOccurrences: 4", "minOccurrences: 1"), "minOccurrences"),
    (DOC.replace("enforcementAction: warn", "enforcementAction: maybe"), "enforcementAction"),
    (DOC.replace("kind: OscillationPattern", "kind: Pod", 1), "OscillationPattern"),
    ("a: [b", "not valid YAML"),
])
def test_bad_documents_are_refused_with_the_field_named(broken, words):
    with pytest.raises(PolicyError) as error:
        load_policy_text(broken, origin="policy.yaml")
    assert words in str(error.value) and "policy.yaml" in str(error.value)


def test_scope_matching_kind_namespace_glob_and_labels():
    scale = load_policy_text(DOC)[0]
    assert scale.applies_to(CART, labels={"tier": "web", "app": "cart"})
    assert not scale.applies_to(CART, labels={"tier": "db"})
    assert not scale.applies_to(CART, labels=None)  # labels unknown (scale subresource): not matched
    assert not scale.applies_to(TargetRef("prod", "Deployment", "cart"), labels={"tier": "web"})
    assert not scale.applies_to(TargetRef("shop", "StatefulSet", "db"), labels={"tier": "web"})


def test_layering_cluster_then_file_then_defaults():
    provider = PolicyProvider(file_policies=load_policy_text(DOC))
    chosen = provider().for_target(CART, labels={"tier": "web"})
    assert chosen[PatternType.SCALE_OSCILLATION].name == "shop-scale"
    assert chosen[PatternType.INEFFECTIVE_LOOP].source == "default"
    unlabelled = provider().for_target(CART, labels=None)
    assert unlabelled[PatternType.SCALE_OSCILLATION].source == "default"
    cluster = load_policy_text(DOC.replace("shop-scale", "from-cluster").replace('labels: {tier: web}', ''))[0]
    provider.set_cluster_policies([cluster])
    assert provider().for_target(CART, labels=None)[PatternType.SCALE_OSCILLATION].name == "from-cluster"
    assert provider().needs_labels(CART)


def test_defaults_follow_the_design():
    policies = {p.pattern: p for p in default_policies()}
    scale = policies[PatternType.SCALE_OSCILLATION]
    assert (scale.min_occurrences, scale.window, scale.strategy) == (3, datetime.timedelta(hours=2),
                                                                    Strategy.COOLING_PERIOD)
    assert policies[PatternType.RESOURCE_THRASHING].window == datetime.timedelta(minutes=90)
    assert policies[PatternType.INEFFECTIVE_LOOP].strategy is Strategy.ESCALATE_HUMAN
    assert policies[PatternType.CASCADING_FAILURE].window == datetime.timedelta(minutes=15)
    assert policies[PatternType.CONTROLLER_FIGHT].strategy is Strategy.BLOCK_ACTION
    assert PolicySet.layered(default_policies()).longest_window == datetime.timedelta(hours=3)


def test_actor_classes_and_bypass_subjects():
    rules = ActorRules(bypass_subjects=("alice", "group:sre"))
    assert rules.classify("system:serviceaccount:kube-system:horizontal-pod-autoscaler", []) is ActorClass.OBSERVED
    assert rules.classify("root", ["system:masters"]) is ActorClass.OBSERVED
    assert rules.classify("system:serviceaccount:ops:agent", []) is ActorClass.AUTOMATION
    assert rules.classify("bob", ["developers"]) is ActorClass.PERSON
    assert rules.may_bypass("alice", []) and rules.may_bypass("bob", ["sre"])
    assert not rules.may_bypass("bob", ["dev"])


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "5", "1w", "-3m", "3 minutes"])
def test_bad_durations(text):
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize("text, value", [("64Mi", 64 * 2**20), ("1Gi", 2**30), ("500m", 0.5), ("2", 2.0),
                                         ("1.5k", 1500.0), ("129e6", 129e6), ("junk", None), (True, None)])
def test_quantities(text, value):
    assert parse_quantity(text) == value
