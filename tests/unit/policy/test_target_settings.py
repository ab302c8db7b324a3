"""Per-workload settings from an ActionHistorySummary's spec: validated as the seed's schema does,
and honoured by policy resolution for the one target they belong to."""

from __future__ import annotations

import datetime

import pytest

from webhook.actions.model import TargetRef
from webhook.policy.defaults import default_policies
from webhook.policy.model import PatternType
from webhook.policy.provider import PolicyProvider
from webhook.policy.resolved import PolicySet
from webhook.policy.target_settings import AnalysisConfig, RetentionSettings, parse

CART = TargetRef(namespace="shop", kind="Deployment", name="cart")
OTHER = TargetRef(namespace="shop", kind="Deployment", name="web")
H = datetime.timedelta(hours=1)


def test_the_seed_fields_are_read() -> None:
    settings = parse({
        "targetRef": {"kind": "Deployment", "namespace": "shop", "name": "cart"},
        "retentionPolicy": {"maxActions": 200, "maxAge": "2w", "compactionStrategy": "oldest-first"},
        "analysisConfig": {"oscillationWindow": "90m", "effectivenessThreshold": 0.5, "patternMinOccurrences": 4},
    })
    assert settings.problems == ()
    assert settings.retention == RetentionSettings(max_actions=200, max_age=datetime.timedelta(weeks=2),
                                                   compaction="oldest-first")
    assert settings.analysis == AnalysisConfig(window=datetime.timedelta(minutes=90), effectiveness_threshold=0.5,
                                               min_occurrences=4)


def test_absent_fields_are_none_and_an_empty_spec_is_no_setting() -> None:
    settings = parse({"targetRef": {}})
    assert settings.analysis.empty and settings.retention == RetentionSettings() and settings.problems == ()


@pytest.mark.parametrize(("spec", "words"), [
    ({"retentionPolicy": {"maxActions": 5}}, "retentionPolicy.maxActions: 5 must be a whole number from 10 to 1000"),
    ({"retentionPolicy": {"maxActions": 1001}}, "from 10 to 1000"),
    ({"retentionPolicy": {"maxActions": "100"}}, "whole number"),
    ({"retentionPolicy": {"maxActions": True}}, "whole number"),
    ({"retentionPolicy": {"maxAge": "30m"}}, "retentionPolicy.maxAge: '30m' is not a whole number followed by h, d or w"),
    ({"retentionPolicy": {"maxAge": "0d"}}, "must be above 0"),
    ({"retentionPolicy": {"maxAge": "999w"}}, "at most 400d"),
    ({"retentionPolicy": {"compactionStrategy": "newest-first"}}, "is not one of oldest-first"),
    ({"analysisConfig": {"oscillationWindow": "2w"}}, "followed by m, h or d"),
    ({"analysisConfig": {"effectivenessThreshold": 1.5}}, "must be a number from 0 to 1"),
    ({"analysisConfig": {"effectivenessThreshold": "high"}}, "must be a number from 0 to 1"),
    ({"analysisConfig": {"patternMinOccurrences": 1}}, "from 2 to 10000"),
    ({"analysisConfig": ["window"]}, "analysisConfig: must be an object"),
])
def test_bad_values_are_named(spec, words) -> None:
    settings = parse(spec)
    assert len(settings.problems) == 1 and words in settings.problems[0], settings.problems
    assert settings.analysis.empty and settings.retention == RetentionSettings()


def test_a_bad_value_is_ignored_while_the_rest_stands() -> None:
    settings = parse({"retentionPolicy": {"maxActions": 5, "compactionStrategy": "oldest-first"},
                      "analysisConfig": {"oscillationWindow": "1 hour", "patternMinOccurrences": 4}})
    assert len(settings.problems) == 2
    assert settings.retention == RetentionSettings(compaction="oldest-first")
    assert settings.analysis == AnalysisConfig(min_occurrences=4)


def test_max_age_rounds_up_to_whole_days() -> None:
    assert RetentionSettings(max_age=datetime.timedelta(hours=36)).max_age_days == 2
    assert RetentionSettings(max_age=datetime.timedelta(hours=1)).max_age_days == 1
    assert RetentionSettings(max_age=datetime.timedelta(weeks=1)).max_age_days == 7
    assert RetentionSettings().max_age_days is None


def test_policy_resolution_tunes_only_that_target_and_never_the_cascading_budget() -> None:
    analysis = AnalysisConfig(window=5 * H, effectiveness_threshold=0.6, min_occurrences=6)
    policies = PolicySet.layered(default_policies(), targets={CART.key: analysis})
    tuned = policies.for_target(CART, labels={})
    plain = policies.for_target(OTHER, labels={})
    for pattern, policy in tuned.items():
        if pattern is PatternType.CASCADING_FAILURE:
            assert policy == plain[pattern]
        else:
            assert (policy.window, policy.min_occurrences) == (5 * H, 6)
            assert plain[pattern].window != 5 * H
    # Every pattern that reads an effectiveness threshold gets the target's; no other pattern does.
    assert tuned[PatternType.INEFFECTIVE_LOOP].threshold("effectivenessThreshold", 0.3) == 0.6
    assert tuned[PatternType.RESTART_STORM].threshold("effectivenessThreshold", 0.3) == 0.6
    for pattern in set(tuned) - {PatternType.INEFFECTIVE_LOOP, PatternType.RESTART_STORM}:
        assert "effectivenessThreshold" not in tuned[pattern].thresholds, pattern
    assert plain[PatternType.INEFFECTIVE_LOOP].threshold("effectivenessThreshold", 0.3) == 0.3


def test_a_partial_setting_keeps_the_policy_values() -> None:
    policies = PolicySet.layered(default_policies(), targets={CART.key: AnalysisConfig(min_occurrences=5)})
    tuned = policies.for_target(CART, labels={})[PatternType.SCALE_OSCILLATION]
    plain = policies.for_target(OTHER, labels={})[PatternType.SCALE_OSCILLATION]
    assert tuned.min_occurrences == 5 and tuned.window == plain.window and tuned.thresholds == plain.thresholds


def test_the_provider_publishes_target_settings_beside_the_cluster_policies() -> None:
    provider = PolicyProvider()
    before = provider().for_target(CART, labels={})[PatternType.SCALE_OSCILLATION]
    provider.set_target_settings({CART.key: AnalysisConfig(window=H), OTHER.key: AnalysisConfig()})
    assert provider().for_target(CART, labels={})[PatternType.SCALE_OSCILLATION].window == H
    assert OTHER.key not in provider().targets            # an empty setting is no setting
    provider.set_target_settings({})
    assert provider().for_target(CART, labels={})[PatternType.SCALE_OSCILLATION] == before
