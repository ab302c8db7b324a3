"""The retention planners: exact plans on small hand-made histories, and properties on any history."""

from __future__ import annotations

import datetime

import hypothesis
import hypothesis.strategies as st
import pytest

from webhook.retention.plan import keep_pattern_aware, plan_deletions, protected
from webhook.retention.policy import RetentionPolicy, Strategy, Trace

NOW = datetime.datetime(2026, 11, 21, 21, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


def trace(id: int, days_ago: float, score: float | None = None, example: bool = False) -> Trace:
    return Trace(id=id, at=NOW - days_ago * DAY, action_type="restart_pod", effectiveness=score,
                 is_pattern_example=example)


def policy(strategy: Strategy, max_actions: int = 10, max_age_days: int = 90) -> RetentionPolicy:
    return RetentionPolicy(max_actions=max_actions, max_age=datetime.timedelta(days=max_age_days),
                           strategy=strategy)


def test_nothing_goes_under_the_limit_and_within_age() -> None:
    traces = [trace(i, i) for i in range(1, 11)]
    for strategy in Strategy:
        assert plan_deletions(traces, policy=policy(strategy), now=NOW) == set()


def test_age_removes_everything_older_whatever_else_is_true() -> None:
    traces = [trace(1, 91, score=0.95, example=True), trace(2, 89), trace(3, 100, score=0.1)]
    for strategy in Strategy:
        assert plan_deletions(traces, policy=policy(strategy), now=NOW) == {1, 3}


def test_oldest_first_keeps_the_newest() -> None:
    traces = [trace(i, i) for i in range(1, 16)]   # id 1 is the newest
    assert plan_deletions(traces, policy=policy(Strategy.OLDEST_FIRST), now=NOW) == {11, 12, 13, 14, 15}


def test_effectiveness_based_keeps_the_best_scores_unassessed_in_the_middle() -> None:
    scores = {1: 0.9, 2: 0.1, 3: None, 4: 0.7, 5: 0.2, 6: 0.95, 7: None, 8: 0.4, 9: 0.6, 10: 0.0, 11: 0.55, 12: 0.3}
    traces = [trace(i, i, score=s) for i, s in scores.items()]
    # Ranked: 6 .95, 1 .9, 4 .7, 9 .6, 11 .55, 3 (.5, newer), 7 (.5), 8 .4, 12 .3, 5 .2 | 2 .1, 10 0.0
    assert plan_deletions(traces, policy=policy(Strategy.EFFECTIVENESS_BASED), now=NOW) == {2, 10}


def test_pattern_aware_follows_the_seed_categories() -> None:
    traces = [
        trace(1, 0.5), trace(2, 0.9, score=0.1),              # last 24h, kept whatever the score
        trace(3, 10, example=True), trace(4, 20, score=0.2, example=True),   # pattern examples
        trace(5, 5, score=0.9), trace(6, 6, score=0.95), trace(7, 7, score=0.85),  # effective: best 40//4=... see below
        trace(8, 8, score=0.1), trace(9, 9, score=0.2),       # failures
        trace(10, 10, score=0.5), trace(11, 11),              # middle and unassessed: go
        trace(12, 12, score=0.8),                             # exactly 0.8 is not "effective"
    ]
    # maxActions 10: quarter 2 (the two best: 6, 5), tenth 1 (the newest failure: 8).
    deleted = plan_deletions(traces, policy=policy(Strategy.PATTERN_AWARE, max_actions=10), now=NOW)
    assert deleted == {7, 9, 10, 11, 12}


def test_pattern_aware_keeps_protected_traces_beyond_max_actions() -> None:
    traces = [trace(i, 0.01 * i) for i in range(1, 13)] + [trace(100 + i, 3 + i, example=True) for i in range(5)]
    assert plan_deletions(traces, policy=policy(Strategy.PATTERN_AWARE, max_actions=10), now=NOW) == set()


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(max_actions=0)
    with pytest.raises(ValueError):
        RetentionPolicy(max_age=datetime.timedelta(0))


# ------------------------------------------------------------------------ properties

traces_strategy = st.lists(
    st.builds(
        lambda age_hours, score, example: (age_hours, score, example),
        st.floats(min_value=0, max_value=24 * 150, allow_nan=False),
        st.one_of(st.none(), st.floats(min_value=0, max_value=1, allow_nan=False)),
        st.booleans(),
    ),
    max_size=80,
).map(lambda items: [
    Trace(id=i + 1, at=NOW - datetime.timedelta(hours=age), effectiveness=score, is_pattern_example=example)
    for i, (age, score, example) in enumerate(items)
])


@hypothesis.given(traces=traces_strategy, max_actions=st.integers(min_value=1, max_value=60),
                  max_age_days=st.integers(min_value=2, max_value=120), strategy=st.sampled_from(list(Strategy)))
def test_deletes_only_known_ids_and_everything_too_old(traces, max_actions, max_age_days, strategy) -> None:
    deleted = plan_deletions(traces, policy=policy(strategy, max_actions, max_age_days), now=NOW)
    assert deleted <= {t.id for t in traces}
    cutoff = NOW - datetime.timedelta(days=max_age_days)
    assert {t.id for t in traces if t.at < cutoff} <= deleted


@hypothesis.given(traces=traces_strategy, max_actions=st.integers(min_value=1, max_value=60),
                  max_age_days=st.integers(min_value=2, max_value=120))
def test_pattern_aware_never_deletes_pattern_examples_or_the_last_day(traces, max_actions, max_age_days) -> None:
    deleted = plan_deletions(traces, policy=policy(Strategy.PATTERN_AWARE, max_actions, max_age_days), now=NOW)
    young = [t for t in traces if t.at >= NOW - datetime.timedelta(days=max_age_days)]  # age always wins
    assert not deleted & protected(young, now=NOW)


@hypothesis.given(traces=traces_strategy, max_actions=st.integers(min_value=1, max_value=60),
                  strategy=st.sampled_from([Strategy.OLDEST_FIRST, Strategy.EFFECTIVENESS_BASED]))
def test_count_strategies_never_keep_more_than_max_actions(traces, max_actions, strategy) -> None:
    deleted = plan_deletions(traces, policy=policy(strategy, max_actions), now=NOW)
    kept = [t for t in traces if t.id not in deleted]
    assert len(kept) == min(max_actions, len([t for t in traces if t.at >= NOW - 90 * DAY]))


@hypothesis.given(traces=traces_strategy, max_actions=st.integers(min_value=1, max_value=60))
def test_oldest_first_keeps_exactly_the_newest(traces, max_actions) -> None:
    # Exactly: as many as the policy allows (so a keeper that deletes nothing, or everything,
    # fails), and none of them older than anything deleted (ties: the higher id is the newer).
    deleted = plan_deletions(traces, policy=policy(Strategy.OLDEST_FIRST, max_actions), now=NOW)
    young = [t for t in traces if t.at >= NOW - 90 * DAY]
    kept = [t for t in young if t.id not in deleted]
    gone = [t for t in young if t.id in deleted]
    assert len(kept) == min(max_actions, len(young))
    assert {t.id for t in traces if t.at < NOW - 90 * DAY} <= deleted
    if kept and gone:
        assert min((t.at, t.id) for t in kept) > max((t.at, t.id) for t in gone)


def test_oldest_first_on_a_full_history_keeps_the_limit_and_no_more() -> None:
    traces = [trace(i, i / 24) for i in range(1, 31)]   # 30 traces, one an hour, id 1 the newest
    deleted = plan_deletions(traces, policy=policy(Strategy.OLDEST_FIRST, max_actions=12), now=NOW)
    assert deleted == set(range(13, 31))


@hypothesis.given(traces=traces_strategy, max_actions=st.integers(min_value=1, max_value=60))
def test_pattern_aware_keeps_at_most_the_quotas_beyond_protected(traces, max_actions) -> None:
    keep = keep_pattern_aware(traces, max_actions, NOW)
    extra = keep - protected(traces, now=NOW)
    assert len(extra) <= max_actions // 4 + max_actions // 10
