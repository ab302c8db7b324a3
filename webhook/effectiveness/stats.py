"""Aggregating effectiveness scores. Pure: (time, score) samples in, numbers out.

* **Mean** — the arithmetic mean of the scores.
* **95% confidence interval** — Student's t: ``mean ± t(0.975, n−1) · s / √n`` with ``s`` the
  sample standard deviation (n−1 in the denominator). Scores are few and bounded, so the t
  distribution (wider than the normal for small n) is the honest choice; its critical values
  come from :data:`_T_975` (exact to three decimals for 1–30 degrees of freedom, then 40, 60, 120,
  interpolated linearly in 1/df, and 1.960 beyond). The interval is clamped to [0, 1]. With a
  single sample nothing is known about the spread, so the interval is the whole [0, 1].
* **Trend** — samples ordered by time are split into an older and a newer half (with an odd
  count the middle sample belongs to neither); ``improving`` when the newer half's mean is at
  least :data:`TREND_THRESHOLD` (0.1) above the older half's, ``declining`` when at least 0.1
  below, else ``stable``. Fewer than :data:`TREND_MIN_SAMPLES` (4) samples: ``stable``.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
from collections.abc import Sequence

TREND_THRESHOLD = 0.1
TREND_MIN_SAMPLES = 4
_EPSILON = 1e-9  # 0.6 - 0.5 is 0.09999999999999998 in floating point; it still counts as 0.1

_T_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
    20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
    29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}
_Z_975 = 1.960


class Trend(str, enum.Enum):
    IMPROVING = "improving"
    STABLE = "stable"
    DECLINING = "declining"


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    at: datetime.datetime
    score: float


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    sample_size: int
    mean: float
    ci_lower: float
    ci_upper: float
    trend: Trend


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("at least one degree of freedom is needed")
    if df in _T_975:
        return _T_975[df]
    known = sorted(_T_975)
    if df > known[-1]:
        lower_df, lower_t, upper_df, upper_t = known[-1], _T_975[known[-1]], math.inf, _Z_975
    else:
        lower_df = max(k for k in known if k < df)
        upper_df = min(k for k in known if k > df)
        lower_t, upper_t = _T_975[lower_df], _T_975[upper_df]
    # Linear in 1/df between the neighbours (1/inf = 0): the standard table interpolation.
    x, x0, x1 = 1 / df, 1 / lower_df, 1 / upper_df
    return upper_t + (lower_t - upper_t) * (x - x1) / (x0 - x1)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def confidence_interval(scores: Sequence[float]) -> tuple[float, float]:
    n = len(scores)
    if n == 0:
        raise ValueError("no scores")
    if n == 1:
        return (0.0, 1.0)
    mean = sum(scores) / n
    variance = sum((score - mean) ** 2 for score in scores) / (n - 1)
    half = t_critical(n - 1) * math.sqrt(variance) / math.sqrt(n)
    return (_clamp(mean - half), _clamp(mean + half))


def trend(samples: Sequence[Sample]) -> Trend:
    if len(samples) < TREND_MIN_SAMPLES:
        return Trend.STABLE
    ordered = sorted(samples, key=lambda sample: sample.at)
    half = len(ordered) // 2
    older = [sample.score for sample in ordered[:half]]
    newer = [sample.score for sample in ordered[-half:]]
    delta = sum(newer) / half - sum(older) / half
    if delta >= TREND_THRESHOLD - _EPSILON:
        return Trend.IMPROVING
    if delta <= -TREND_THRESHOLD + _EPSILON:
        return Trend.DECLINING
    return Trend.STABLE


def summarise(samples: Sequence[Sample]) -> Summary:
    if not samples:
        raise ValueError("no samples")
    scores = [sample.score for sample in samples]
    lower, upper = confidence_interval(scores)
    return Summary(sample_size=len(scores), mean=sum(scores) / len(scores), ci_lower=lower, ci_upper=upper,
                   trend=trend(samples))


def trend_of(*, sample_size: int, older_mean: float | None, newer_mean: float | None) -> Trend:
    """:func:`trend` from the means of the older and newer halves, as PostgreSQL computes them."""
    if sample_size < TREND_MIN_SAMPLES or older_mean is None or newer_mean is None:
        return Trend.STABLE
    delta = newer_mean - older_mean
    if delta >= TREND_THRESHOLD - _EPSILON:
        return Trend.IMPROVING
    if delta <= -TREND_THRESHOLD + _EPSILON:
        return Trend.DECLINING
    return Trend.STABLE


def summary_of(*, sample_size: int, mean: float, stddev: float | None, older_mean: float | None,
               newer_mean: float | None) -> Summary:
    """:func:`summarise` from a group's moments (count, mean, sample standard deviation, the means
    of its older and newer halves): what the refresh gets from PostgreSQL instead of every sample."""
    if sample_size < 1:
        raise ValueError("no samples")
    if sample_size == 1 or stddev is None:
        lower, upper = 0.0, 1.0
    else:
        half = t_critical(sample_size - 1) * stddev / math.sqrt(sample_size)
        lower, upper = _clamp(mean - half), _clamp(mean + half)
    return Summary(sample_size=sample_size, mean=mean, ci_lower=lower, ci_upper=upper,
                   trend=trend_of(sample_size=sample_size, older_mean=older_mean, newer_mean=newer_mean))
