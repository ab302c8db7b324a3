"""Which of a target's traces to delete. Pure: traces, policy and "now" in, ids out.

Two rules, in order:

1. **Age.** Every trace older than ``maxAge`` goes, whatever else is true of it (pattern
   examples included): the 90-day promise of DESIGN §7 is a ceiling as well as a floor, and the
   monthly partitions beyond it are dropped whole anyway.
2. **Count.** When more than ``maxActions`` traces remain, the compaction strategy chooses:

   * ``oldest-first`` keeps the newest ``maxActions`` (ties: higher id is newer).
   * ``effectiveness-based`` keeps the ``maxActions`` best-scored. An unassessed trace counts
     as :data:`UNASSESSED_SCORE` (0.5, the middle of the scale): nothing shows it worked or
     failed, so it ranks above known failures and below known successes. Ties: newer first.
   * ``pattern-aware`` follows the seed's ``applyPatternAwareRetention``: keep the pattern
     examples (traces that are evidence of a detection) and everything from the last
     :data:`RECENT` (24h), plus the best ``maxActions // 4`` effective traces (score > 0.8,
     highest score first, then newest) and the newest ``maxActions // 10`` failures (score <
     0.3) "for learning"; everything else goes, as in the seed.

     Two deliberate deviations from the seed: its categories are exclusive with effectiveness
     ranked before recency, so a recent but well-scored trace could be cut by the quarter
     limit — here the last 24h are kept whatever their score; and the seed truncates the kept
     list to ``maxActions`` — here pattern examples and the last 24h are never deleted, even
     when they alone exceed ``maxActions`` (losing the evidence of an oscillation, or the
     history the detectors are reading right now, costs more than a few extra rows).

Nothing is deleted by the count rule while ``maxActions`` or fewer traces remain.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

from webhook.retention.policy import RetentionPolicy, Strategy, Trace

RECENT = datetime.timedelta(hours=24)
UNASSESSED_SCORE = 0.5
EFFECTIVE_ABOVE = 0.8
FAILED_BELOW = 0.3


def expired(traces: Iterable[Trace], *, max_age: datetime.timedelta, now: datetime.datetime) -> set[int]:
    """Ids of traces older than ``max_age``."""
    cutoff = now - max_age
    return {trace.id for trace in traces if trace.at < cutoff}


def plan_deletions(traces: Sequence[Trace], *, policy: RetentionPolicy, now: datetime.datetime) -> set[int]:
    """Ids to delete from one target's history under ``policy`` at ``now``."""
    doomed = expired(traces, max_age=policy.max_age, now=now)
    live = [trace for trace in traces if trace.id not in doomed]
    if len(live) <= policy.max_actions:
        return doomed
    keep = _KEEPERS[policy.strategy](live, policy.max_actions, now)
    return doomed | {trace.id for trace in live if trace.id not in keep}


def _newest_first(trace: Trace) -> tuple[float, int]:
    return (-trace.at.timestamp(), -trace.id)


def keep_oldest_first(traces: Sequence[Trace], max_actions: int, now: datetime.datetime) -> set[int]:
    """The newest ``max_actions``."""
    return {trace.id for trace in sorted(traces, key=_newest_first)[:max_actions]}


def score_of(trace: Trace) -> float:
    return UNASSESSED_SCORE if trace.effectiveness is None else trace.effectiveness


def keep_effectiveness_based(traces: Sequence[Trace], max_actions: int, now: datetime.datetime) -> set[int]:
    """The ``max_actions`` best-scored, unassessed counting as the middle score; ties newest first."""
    ranked = sorted(traces, key=lambda trace: (-score_of(trace), *_newest_first(trace)))
    return {trace.id for trace in ranked[:max_actions]}


def protected(traces: Iterable[Trace], *, now: datetime.datetime) -> set[int]:
    """What pattern-aware retention never deletes (short of the age limit): pattern examples and the last 24h."""
    return {trace.id for trace in traces if trace.is_pattern_example or trace.at > now - RECENT}


def keep_pattern_aware(traces: Sequence[Trace], max_actions: int, now: datetime.datetime) -> set[int]:
    keep = protected(traces, now=now)
    rest = [trace for trace in traces if trace.id not in keep]
    effective = sorted(
        (t for t in rest if t.effectiveness is not None and t.effectiveness > EFFECTIVE_ABOVE),
        key=lambda trace: (-score_of(trace), *_newest_first(trace)),
    )
    failures = sorted(
        (t for t in rest if t.effectiveness is not None and t.effectiveness < FAILED_BELOW),
        key=_newest_first,
    )
    keep.update(trace.id for trace in effective[: max_actions // 4])
    keep.update(trace.id for trace in failures[: max_actions // 10])
    return keep


_KEEPERS = {
    Strategy.OLDEST_FIRST: keep_oldest_first,
    Strategy.EFFECTIVENESS_BASED: keep_effectiveness_based,
    Strategy.PATTERN_AWARE: keep_pattern_aware,
}
