"""restart-storm (DESIGN §4): ≥3 earlier restarts of one workload's pods within 1h, unassessed,
make the next one an escalation."""

from __future__ import annotations

from webhook.detection import restart_storm
from webhook.detection.situation import Severity
from webhook.policy.model import PatternType

from .factories import HPA, action, policy, situation, target, uids

POLICY = policy(PatternType.RESTART_STORM)


def detect(proposed, *history, policy=POLICY):
    return restart_storm.detect(situation(proposed, history), policy)


def restart(at=0, **kwargs):
    return action("restart_pod", at=at, **kwargs)


def test_the_fourth_restart_within_the_hour_triggers_without_any_assessment():
    history = [restart(-50), restart(-30), restart(-10)]
    proposed = restart()
    finding = detect(proposed, *history)
    assert finding is not None and finding.triggered
    assert finding.severity is Severity.HIGH
    assert finding.summary == "3 earlier pod restarts in 50m without effect"
    assert uids(finding.evidence) == uids([*history, proposed])


def test_the_third_is_a_near_miss_and_the_second_nothing():
    near = detect(restart(), restart(-30), restart(-10))
    assert near is not None and not near.triggered
    assert detect(restart(), restart(-10)) is None


def test_restarts_older_than_the_hour_do_not_count():
    assert detect(restart(), restart(-70), restart(-30), restart(-10)).triggered is False


def test_an_effective_restart_ends_the_storm():
    history = [restart(-50), restart(-40, effectiveness=0.9), restart(-30), restart(-10)]
    finding = detect(restart(), *history)
    assert finding is not None and not finding.triggered
    assert detect(restart(), restart(-50), restart(-40, effectiveness=0.1), restart(-30), restart(-10)).triggered


def test_other_actors_restarts_count_and_other_actions_do_not():
    history = [restart(-50, actor=HPA), restart(-30), action("scale_deployment", at=-20), restart(-10)]
    assert detect(restart(), *history).triggered
    assert detect(action("scale_deployment"), restart(-50), restart(-30), restart(-10)) is None


def test_restarts_of_another_workload_do_not_count():
    other = target("api")
    assert detect(restart(), restart(-50, on=other), restart(-30, on=other), restart(-10, on=other)) is None


def test_twice_the_threshold_is_critical():
    history = [restart(-55 + 8 * i) for i in range(6)]
    assert detect(restart(), *history).severity is Severity.CRITICAL
