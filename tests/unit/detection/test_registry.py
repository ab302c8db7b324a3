"""The pattern registry is the one list of patterns: defaults, thresholds, CRD enums and the
values schema must name exactly the registered patterns."""

from __future__ import annotations

import json
import pathlib

import yaml

from webhook.actions.model import ActionEvent
from webhook.decision.state import Applies, alert_name
from webhook.detection.detect import DETECTORS
from webhook.detection.registry import REGISTRY, SPECS, Need, Scope, needed_after, needed_before
from webhook.detection.situation import Reach
from webhook.policy.defaults import DEFAULT_DOCUMENTS
from webhook.policy.model import PatternType, Strategy
from webhook.policy.resolved import BASIS, Basis
from webhook.policy.validation import THRESHOLDS

from .factories import CART, action, policy, scale

CHART = pathlib.Path(__file__).resolve().parents[3] / "charts" / "safety-gate"
REGISTERED = {spec.pattern.value for spec in REGISTRY}


def _enums(node, found):
    if isinstance(node, dict):
        pattern_type = node.get("patternType")
        if isinstance(pattern_type, dict) and "enum" in pattern_type:
            found.append(pattern_type["enum"])
        for value in node.values():
            _enums(value, found)
    elif isinstance(node, list):
        for value in node:
            _enums(value, found)
    return found


def test_every_pattern_type_is_registered_once_with_a_default_and_thresholds():
    assert [spec.pattern for spec in REGISTRY] == list(SPECS)
    assert set(SPECS) == set(PatternType)
    assert set(DETECTORS) == set(PatternType)
    defaults = [doc["spec"]["patternDefinition"]["patternType"] for doc in DEFAULT_DOCUMENTS]
    assert sorted(defaults) == sorted(REGISTERED)
    assert set(THRESHOLDS) == set(PatternType)


def test_every_crd_enum_of_pattern_types_is_the_registry():
    enums = []
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            _enums(document, enums)
    assert len(enums) >= 3  # OscillationPattern, OscillationAlert, ActionHistorySummary
    for enum in enums:
        assert sorted(enum) == sorted(REGISTERED)


def test_the_values_schema_enum_of_pattern_types_is_the_registry():
    enums = _enums(json.loads((CHART / "values.schema.json").read_text()), [])
    assert enums and all(sorted(enum) == sorted(REGISTERED) for enum in enums)


def test_an_actor_scoped_pattern_names_its_alert_after_the_actor():
    for spec in REGISTRY:
        name = alert_name(pattern=spec.pattern, target=CART, actor="system:serviceaccount:ops:agent",
                          scope=Reach.of_namespace("shop"))
        assert name.startswith("agent-ops-") is (spec.scope is Scope.ACTOR), spec.pattern


def test_what_a_restriction_refuses():
    node = ActionEvent(uid="n", at=scale(1, 2).at, target=None, action_type="drain_node", actor="a",
                       actor_class=scale(1, 2).actor_class, unschedulable=True)
    assert Applies.REPLICAS.covers(scale(3, 5)) and not Applies.REPLICAS.covers(action("restart_pod"))
    assert Applies.REPLICAS.covers(action("scale_deployment"))  # a PipelineRun that scales
    assert Applies.SCHEDULABILITY.covers(node) and not Applies.SCHEDULABILITY.covers(scale(3, 5))
    assert Applies.ALL.covers(node) and Applies.ALL.covers(action("restart_pod"))


def test_what_is_loaded_follows_patterns_and_strategies():
    assert needed_before(list(PatternType)) == {Need.ACTOR_HISTORY}
    assert needed_before([PatternType.SCALE_OSCILLATION]) == set()

    class Found:
        def __init__(self, pattern):
            self.pattern, self.policy = pattern, policy(pattern)

    assert needed_after([Found(PatternType.CONTROLLER_FIGHT)]) == {Need.HPA_NAME}
    assert needed_after([Found(PatternType.RESTART_STORM)]) == {Need.APPROVALS}
    assert needed_after([Found(PatternType.RESOURCE_THRASHING)]) == {Need.EFFECTIVENESS}
    assert needed_after([Found(PatternType.CASCADING_FAILURE)]) == set()
    assert policy(PatternType.SCALE_OSCILLATION).strategy is Strategy.COOLING_PERIOD
    assert needed_after([Found(PatternType.SCALE_OSCILLATION)]) == {Need.APPROVALS}  # it may escalate


def test_the_policy_layer_s_basis_of_each_pattern_is_the_registry_s():
    """Policy cannot import detection, so it keeps its own table of whose history a pattern is
    judged on (what a target's analysisConfig may tune): it must say what the registry says."""
    assert set(BASIS) == set(SPECS)
    for spec in REGISTRY:
        actor_based = spec.scope is Scope.ACTOR or Need.ACTOR_HISTORY in spec.needs
        assert (BASIS[spec.pattern] is Basis.ACTOR) is actor_based, spec.pattern
