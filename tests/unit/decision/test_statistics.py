"""The OscillationPattern statistics on small hand-made decision records, and properties on any."""

from __future__ import annotations

import datetime

import hypothesis
import hypothesis.strategies as st

from webhook.actions.model import TargetRef
from webhook.decision.decide import Outcome
from webhook.decision.statistics import (
    Detection,
    Override,
    OverrideKind,
    attribute,
    history,
    statistics,
    status,
)
from webhook.policy.model import PatternType, ResourceScope, Strategy
from webhook.policy.resolved import PatternPolicy

NOW = datetime.datetime(2026, 11, 21, 21, 0, tzinfo=datetime.timezone.utc)
MIN = datetime.timedelta(minutes=1)
WINDOW = datetime.timedelta(hours=2)
CART = TargetRef(namespace="shop", kind="Deployment", name="cart")
WEB = TargetRef(namespace="web", kind="Deployment", name="front")
NODE = TargetRef(namespace="", kind="Node", name="worker-1")
SCALE = PatternType.SCALE_OSCILLATION


def detected(minutes_ago: float, *, target: TargetRef = CART, outcome: Outcome = Outcome.DENY,
             strategy: Strategy = Strategy.COOLING_PERIOD, pattern: PatternType = SCALE, **kw) -> Detection:
    return Detection(at=NOW - minutes_ago * MIN, pattern=pattern, target=target, outcome=outcome,
                     strategy=strategy, **kw)


def overridden(minutes_ago: float, kind: OverrideKind, *, target: TargetRef = CART,
               pattern: PatternType | None = SCALE) -> Override:
    return Override(at=NOW - minutes_ago * MIN, target=target, kind=kind, pattern=pattern)


def policy(name: str, pattern: PatternType = SCALE, **scope) -> PatternPolicy:
    return PatternPolicy(name=name, source="cluster", pattern=pattern, min_occurrences=3, window=WINDOW,
                         thresholds={}, strategy=Strategy.COOLING_PERIOD, parameters={},
                         scope=ResourceScope(**scope))


def test_no_detections_say_zero_and_no_rates() -> None:
    assert status([], [], window=WINDOW, now=NOW) == {"detectionHistory": [], "statistics": {"totalDetections": 0}}


def test_a_refusal_not_followed_by_the_pattern_is_a_success_once_its_window_ended() -> None:
    numbers = statistics([detected(300)], [], window=WINDOW, now=NOW)
    assert (numbers.refusals, numbers.judged, numbers.successes) == (1, 1, 1)
    assert numbers.prevention_success_rate == 1.0 and numbers.false_positive_rate == 0.0


def test_a_refusal_in_its_window_is_not_judged_yet() -> None:
    numbers = statistics([detected(60)], [], window=WINDOW, now=NOW)
    assert numbers.judged == 0 and numbers.prevention_success_rate is None
    assert "preventionSuccessRate" not in numbers.to_status()


def test_the_pattern_forming_again_on_the_target_is_a_failure_elsewhere_it_is_not() -> None:
    records = [detected(400), detected(340), detected(330, target=WEB)]  # 400 → 340 within 2h: 400 failed
    numbers = statistics(records, [], window=WINDOW, now=NOW)
    assert (numbers.judged, numbers.successes) == (3, 2)
    assert numbers.prevention_success_rate == 2 / 3


def test_a_detection_after_the_window_does_not_undo_a_success() -> None:
    numbers = statistics([detected(400), detected(400 - 121)], [], window=WINDOW, now=NOW)
    assert numbers.successes == 2


def test_approvals_of_the_same_pattern_and_bypasses_are_false_positives() -> None:
    refusals = [detected(300), detected(200, target=WEB), detected(100, target=NODE), detected(50)]
    overrides = [
        overridden(290, OverrideKind.APPROVAL),                         # overrules the refusal at 300
        overridden(190, OverrideKind.BYPASS, target=WEB, pattern=None),  # overrules the one at 200
        overridden(95, OverrideKind.APPROVAL, target=NODE, pattern=PatternType.CONTROLLER_FIGHT),  # other pattern
        overridden(60, OverrideKind.BYPASS, target=WEB, pattern=None),  # other target than the refusal at 50
    ]
    numbers = statistics(refusals, overrides, window=WINDOW, now=NOW)
    assert (numbers.refusals, numbers.false_positives) == (4, 2)
    assert numbers.to_status()["falsePositiveRate"] == 0.5


def test_an_override_before_the_refusal_or_after_its_window_is_not_one() -> None:
    overrides = [overridden(301, OverrideKind.BYPASS), overridden(300 - 121, OverrideKind.APPROVAL)]
    assert statistics([detected(300)], overrides, window=WINDOW, now=NOW).false_positives == 0


def test_only_refusals_are_judged_but_every_detection_counts() -> None:
    records = [detected(500, outcome=Outcome.WARN), detected(400, outcome=Outcome.DRYRUN_DENY),
               detected(300, outcome=Outcome.APPROVED, strategy=Strategy.ESCALATE_HUMAN)]
    numbers = statistics(records, [], window=WINDOW, now=NOW)
    assert numbers.total_detections == 3 and numbers.refusals == 0
    assert numbers.to_status() == {"totalDetections": 3, "lastDetection": "2026-11-21T16:00:00Z"}


def test_history_is_newest_first_bounded_and_in_the_crd_shape() -> None:
    records = [detected(i * 10) for i in range(1, 15)]
    records.append(detected(1, target=NODE, strategy=Strategy.ESCALATE_HUMAN, confidence=1.7, action_count=4))
    records.append(detected(2, outcome=Outcome.WARN, confidence=0.8))
    entries = history(records, limit=10)
    assert len(entries) == 10
    assert entries[0] == {"detectedAt": "2026-11-21T20:59:00Z", "resourceRef": {"kind": "Node", "name": "worker-1"},
                          "preventionApplied": True, "outcome": "escalated", "confidence": 1.0, "actionCount": 4}
    assert entries[1]["outcome"] == "allowed" and entries[1]["preventionApplied"] is False
    assert entries[2]["outcome"] == "prevented" and entries[2]["resourceRef"]["namespace"] == "shop"
    assert [e["detectedAt"] for e in entries] == sorted((e["detectedAt"] for e in entries), reverse=True)


def test_each_detection_goes_to_the_first_policy_of_its_pattern_that_covers_the_target() -> None:
    policies = [policy("a-shop", namespaces=["shop"]), policy("b-all"),
                policy("c-fight", PatternType.CONTROLLER_FIGHT), policy("d-labelled", labels={"tier": "web"})]
    records = [detected(10), detected(20, target=WEB), detected(30, pattern=PatternType.CONTROLLER_FIGHT),
               detected(40, pattern=PatternType.CASCADING_FAILURE)]
    found = attribute(records, policies)
    assert found == {"a-shop": [records[0]], "b-all": [records[1]], "c-fight": [records[2]], "d-labelled": []}


# ------------------------------------------------------------------------ properties

targets = st.sampled_from([CART, WEB, NODE])
detections = st.lists(st.builds(
    lambda minutes, target, outcome: detected(minutes, target=target, outcome=outcome),
    st.integers(min_value=0, max_value=60 * 24 * 30), targets,
    st.sampled_from([Outcome.DENY, Outcome.DENY, Outcome.WARN, Outcome.APPROVED])), max_size=40)
overrides = st.lists(st.builds(
    lambda minutes, target, kind: overridden(minutes, kind, target=target),
    st.integers(min_value=0, max_value=60 * 24 * 30), targets, st.sampled_from(list(OverrideKind))), max_size=20)


@hypothesis.given(records=detections, overruled=overrides)
def test_rates_are_fractions_of_the_refusals(records, overruled) -> None:
    numbers = statistics(records, overruled, window=WINDOW, now=NOW)
    assert numbers.total_detections == len(records)
    assert numbers.refusals == sum(1 for r in records if r.outcome is Outcome.DENY)
    assert 0 <= numbers.false_positives <= numbers.refusals
    assert 0 <= numbers.successes <= numbers.judged <= numbers.refusals
    body = numbers.to_status()
    for key in ("preventionSuccessRate", "falsePositiveRate"):
        assert key not in body or 0.0 <= body[key] <= 1.0


@hypothesis.given(records=detections)
def test_a_lone_refusal_per_target_is_always_a_success(records) -> None:
    # One refusal per target, long judged, nothing else on it: nothing could have formed again.
    lone = {r.target.key: r for r in records}.values()
    old = [Detection(at=NOW - datetime.timedelta(days=1), pattern=r.pattern, target=r.target, outcome=Outcome.DENY,
                     strategy=r.strategy) for r in lone]
    numbers = statistics(old, [], window=WINDOW, now=NOW)
    assert numbers.successes == numbers.judged == len(old)
