"""controller-fight (DESIGN §4): the actor's change was moved back by another actor within 10m and the
proposed change moves it again."""

from __future__ import annotations

from webhook.detection import controller_fight
from webhook.detection.situation import Severity
from webhook.policy.model import PatternType

from .factories import HPA, OTHER_AGENT, action, minutes, policy, scale, situation, uids

POLICY = policy(PatternType.CONTROLLER_FIGHT)


def detect(proposed, *history, policy=POLICY, **kwargs):
    return controller_fight.detect(situation(proposed, history, **kwargs), policy)


def test_hpa_moves_it_back_and_the_agent_moves_it_again():
    mine, theirs = scale(3, 5, at=-8), scale(5, 3, at=-4, actor=HPA)
    proposed = scale(3, 5)
    finding = detect(proposed, mine, theirs)
    assert finding is not None and finding.triggered
    assert finding.counterpart == HPA
    assert finding.severity is Severity.HIGH
    assert uids(finding.evidence) == uids([mine, theirs, proposed])
    assert finding.summary == (
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler moved replicas back 5→3 4m after your change 3→5"
    )
    assert finding.confidence == 0.8  # 1 − ½ × 4/10


def test_revert_window_is_inclusive_at_ten_minutes():
    assert detect(scale(3, 5), scale(3, 5, at=-30), scale(5, 3, at=-20, actor=HPA)).triggered
    assert detect(scale(3, 5), scale(3, 5, at=-30), scale(5, 3, at=-19.9, actor=HPA)) is None


def test_revert_window_threshold_is_honoured():
    wide = policy(PatternType.CONTROLLER_FIGHT, thresholds={"revertWindowMinutes": 20})
    assert detect(scale(3, 5), scale(3, 5, at=-30), scale(5, 3, at=-15, actor=HPA), policy=wide).triggered


def test_the_proposed_must_move_it_again():
    assert detect(scale(3, 2), scale(3, 5, at=-8), scale(5, 3, at=-4, actor=HPA)) is None


def test_a_revert_by_the_same_actor_is_not_a_fight():
    assert detect(scale(3, 5), scale(3, 5, at=-8), scale(5, 3, at=-4)) is None


def test_the_other_actor_must_move_it_back_not_further():
    assert detect(scale(6, 4), scale(3, 5, at=-8), scale(5, 6, at=-4, actor=HPA)) is None


def test_another_replica_change_between_breaks_the_pair():
    # The HPA first moved it further up, then back down: its revert does not directly follow the agent's change.
    history = [scale(3, 5, at=-8), scale(5, 6, at=-6, actor=HPA), scale(6, 3, at=-4, actor=HPA)]
    assert detect(scale(3, 5), *history) is None


def test_non_replica_events_between_do_not_break_the_pair():
    history = [scale(3, 5, at=-8), action("restart_pod", at=-6), scale(5, 3, at=-4, actor=HPA)]
    assert detect(scale(3, 5), *history).triggered


def test_the_most_recent_pair_decides():
    # An old fight (down, HPA up) then a newer one (up, HPA down): the proposed up continues the newer.
    history = [scale(5, 3, at=-50), scale(3, 5, at=-45, actor=HPA), scale(5, 7, at=-8), scale(7, 5, at=-4, actor=HPA)]
    finding = detect(scale(5, 7), *history)
    assert finding.triggered and uids(finding.evidence[:2]) == uids(history[2:])
    assert detect(scale(5, 3), *history) is None


def test_the_pair_must_be_in_the_window():
    history = [scale(3, 5, at=-65), scale(5, 3, at=-58, actor=HPA)]
    assert detect(scale(3, 5), *history) is None
    assert detect(scale(3, 5), *history, resets={PatternType.CONTROLLER_FIGHT: minutes(-70)}) is None
    assert detect(scale(3, 5), scale(3, 5, at=-55), scale(5, 3, at=-50, actor=HPA)).triggered


def test_not_a_replica_change_is_not_checked():
    assert detect(action("restart_pod"), scale(3, 5, at=-8), scale(5, 3, at=-4, actor=HPA)) is None


def test_another_agent_counts_as_the_other_actor():
    finding = detect(scale(3, 5), scale(3, 5, at=-2), scale(5, 3, at=-1.5, actor=OTHER_AGENT))
    assert finding.counterpart == OTHER_AGENT
    assert "5→3 30s after" in finding.summary  # spans under a minute are said in seconds
    assert finding.confidence == 0.975
