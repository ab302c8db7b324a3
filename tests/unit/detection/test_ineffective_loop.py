"""ineffective-loop (DESIGN §4): ≥3 earlier ineffective actions of the proposed type on the target in 3h."""

from __future__ import annotations

from webhook.detection import ineffective_loop
from webhook.detection.situation import Severity
from webhook.policy.model import PatternType

from .factories import HPA, action, minutes, policy, situation, uids

POLICY = policy(PatternType.INEFFECTIVE_LOOP)
OOM = "KubePodOOMKilled"


def detect(proposed, *history, policy=POLICY, **kwargs):
    return ineffective_loop.detect(situation(proposed, history, **kwargs), policy)


def increase(at=0, *, alert=OOM, score=None, **kwargs):
    return action("increase_resources", at=at, alert_name=alert, effectiveness=score, **kwargs)


def test_four_memory_increases_for_the_same_alert_trigger_on_the_fourth():
    history = [increase(-130), increase(-60), increase(-30)]
    proposed = increase()
    finding = detect(proposed, *history)
    assert finding is not None and finding.triggered
    assert finding.severity is Severity.HIGH
    assert finding.summary == "3 earlier increase_resources actions in 2h10m without effect (alert KubePodOOMKilled)"
    assert uids(finding.evidence) == uids([*history, proposed])
    assert finding.confidence == 0.5


def test_the_third_is_a_near_miss():
    finding = detect(increase(), increase(-60), increase(-30))
    assert finding is not None and not finding.triggered
    assert finding.summary == "2 earlier increase_resources actions in 1h without effect (alert KubePodOOMKilled)"


def test_the_second_is_nothing():
    assert detect(increase(), increase(-30)) is None


def test_an_effective_action_in_the_middle_breaks_the_loop():
    assert detect(increase(), increase(-100, score=0.1), increase(-60, score=0.5), increase(-30, score=0.1)) is None
    # Exactly at the threshold is effective.
    assert detect(increase(), increase(-100), increase(-60, score=0.3), increase(-30)) is None


def test_only_actions_after_the_last_effective_one_count():
    history = [increase(-170, score=0.9), increase(-150), increase(-120, score=0.1), increase(-90), increase(-60)]
    finding = detect(increase(), *history)
    assert finding.triggered
    assert uids(finding.evidence) == uids([*history[1:], finding.evidence[-1]])


def test_scores_are_listed_when_assessed():
    history = [increase(-90, score=0.1), increase(-60, score=0.2), increase(-30)]
    finding = detect(increase(), *history)
    assert finding.summary == (
        "3 earlier increase_resources actions in 1h30m without effect "
        "(alert KubePodOOMKilled; scores 0.1, 0.2, unassessed)"
    )


def test_assessed_low_scores_count_without_any_alert():
    history = [increase(-90, alert=None, score=0), increase(-60, alert=None, score=0.25),
               increase(-30, alert=None, score=0.1)]
    finding = detect(increase(alert=None), *history)
    assert finding.triggered
    assert finding.summary == "3 earlier increase_resources actions in 1h30m without effect (scores 0, 0.25, 0.1)"


def test_unassessed_without_the_alert_coming_back_neither_counts_nor_resets():
    # The middle action's alert never recurred: it is not shown to have failed, nor to have worked.
    history = [increase(-120), increase(-100, alert="Other"), increase(-60), increase(-30)]
    finding = detect(increase(), *history)
    assert finding.triggered
    assert "Other" not in finding.summary
    assert len(finding.evidence) == 4
    assert detect(increase(), increase(-60, alert=None), increase(-30, alert=None), increase(-10, alert=None)) is None


def test_the_alert_may_come_back_on_any_later_event():
    # Each increase is followed by some event (another type, another actor) with the same alert.
    history = [increase(-120, alert="A"), action("restart_pod", at=-110, alert_name="A", actor=HPA),
               increase(-100, alert="B"), action("restart_pod", at=-90, alert_name="B"),
               increase(-60, alert="C")]
    finding = detect(increase(alert="C"), *history)
    assert finding.triggered
    assert finding.summary.endswith("without effect (alerts A, B, C)")


def test_other_action_types_do_not_count():
    history = [increase(-90), action("restart_pod", at=-60, alert_name=OOM), increase(-30)]
    finding = detect(increase(), *history)
    assert finding is not None and not finding.triggered


def test_window_is_three_hours_exclusive_of_its_start():
    history = [increase(-180), increase(-60), increase(-30)]
    assert not detect(increase(), *history).triggered
    history[0] = increase(-179.9)
    assert detect(increase(), *history).triggered


def test_a_reset_forgets_earlier_actions():
    history = [increase(-130), increase(-60), increase(-30)]
    assert not detect(increase(), *history, resets={PatternType.INEFFECTIVE_LOOP: minutes(-130)}).triggered


def test_critical_at_twice_the_count():
    history = [increase(-170 + 20 * index) for index in range(6)]
    finding = detect(increase(), *history)
    assert finding.severity is Severity.CRITICAL
    assert finding.confidence == 1.0
    assert detect(increase(), *history[1:]).severity is Severity.HIGH


def test_min_occurrences_sets_the_count():
    three = policy(PatternType.INEFFECTIVE_LOOP, min_occurrences=3)
    assert detect(increase(), increase(-60), increase(-30), policy=three).triggered
    near = detect(increase(), increase(-30), policy=three)
    assert near is not None and not near.triggered


def test_effectiveness_threshold_is_honoured():
    strict = policy(PatternType.INEFFECTIVE_LOOP, thresholds={"effectivenessThreshold": 0.6})
    history = [increase(-90, score=0.5), increase(-60, score=0.5), increase(-30, score=0.5)]
    assert detect(increase(), *history) is None
    assert detect(increase(), *history, policy=strict).triggered
