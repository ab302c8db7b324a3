"""Per-workload settings: the seed's ``ActionHistory.spec.retentionPolicy`` and ``spec.analysisConfig``.

People who own a workload set them on its ``ActionHistorySummary`` (``kubectl patch ahs ...``):
the gate writes that object's ``spec.targetRef``/``spec.target`` and its ``status`` by
server-side apply, and never the two fields below, which therefore stay with whoever set them.

* ``retentionPolicy``: ``maxActions`` (10–1000), ``maxAge`` (``24h``, ``30d``, ``2w``),
  ``compactionStrategy`` (``oldest-first`` | ``effectiveness-based`` | ``pattern-aware``);
  honoured by retention.
* ``analysisConfig``: ``oscillationWindow`` (``90m``, ``2h``, ``1d``), ``effectivenessThreshold``
  (0–1), ``patternMinOccurrences`` (≥ 2); honoured by detection through policy resolution
  (:meth:`webhook.policy.resolved.PolicySet.for_target`), for the patterns judged per target.

Validated as the seed's schema does (the CRD carries the same rules); a value that gets past an
older CRD is ignored with its problem named, never half-applied: the rest of the settings stand.
Pure: a spec in, settings and problems out.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from typing import Any

RETENTION_AGE = re.compile(r"^(\d{1,6})(h|d|w)$")
ANALYSIS_WINDOW = re.compile(r"^(\d{1,6})(m|h|d)$")
UNITS = {"m": datetime.timedelta(minutes=1), "h": datetime.timedelta(hours=1), "d": datetime.timedelta(days=1),
         "w": datetime.timedelta(weeks=1)}
MAX_ACTIONS = (10, 1000)
MIN_OCCURRENCES = (2, 10000)
MAX_WINDOW = datetime.timedelta(days=400)
COMPACTION = ("oldest-first", "effectiveness-based", "pattern-aware")


@dataclasses.dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """What detection reads per target; None leaves the policy's value."""

    window: datetime.timedelta | None = None
    effectiveness_threshold: float | None = None
    min_occurrences: int | None = None

    @property
    def empty(self) -> bool:
        return self.window is None and self.effectiveness_threshold is None and self.min_occurrences is None


@dataclasses.dataclass(frozen=True, slots=True)
class RetentionSettings:
    """What retention reads per target; None leaves the default."""

    max_actions: int | None = None
    max_age: datetime.timedelta | None = None
    compaction: str | None = None

    @property
    def max_age_days(self) -> int | None:
        """Whole days, rounded up: retention runs daily and keeps history by the day."""
        if self.max_age is None:
            return None
        return max(1, -(-self.max_age // datetime.timedelta(days=1)))


@dataclasses.dataclass(frozen=True, slots=True)
class TargetSettings:
    analysis: AnalysisConfig = AnalysisConfig()
    retention: RetentionSettings = RetentionSettings()
    problems: tuple[str, ...] = ()


def _duration(value: object, pattern: re.Pattern[str], field: str, problems: list[str], *,
              units: str) -> datetime.timedelta | None:
    match = pattern.match(value) if isinstance(value, str) else None
    if match is None:
        problems.append(f"{field}: {value!r} is not a whole number followed by {units}")
        return None
    amount = int(match.group(1)) * UNITS[match.group(2)]
    if not datetime.timedelta(0) < amount <= MAX_WINDOW:
        problems.append(f"{field}: {value!r} must be above 0 and at most 400d")
        return None
    return amount


def _integer(value: object, bounds: tuple[int, int], field: str, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        problems.append(f"{field}: {value!r} must be a whole number from {bounds[0]} to {bounds[1]}")
        return None
    return value


def parse(spec: Mapping[str, Any] | None) -> TargetSettings:
    """The settings in an ActionHistorySummary's ``spec`` (absent fields: None)."""
    spec = spec or {}
    problems: list[str] = []
    retention = spec.get("retentionPolicy") or {}
    analysis = spec.get("analysisConfig") or {}
    if not isinstance(retention, Mapping):
        problems.append("retentionPolicy: must be an object")
        retention = {}
    if not isinstance(analysis, Mapping):
        problems.append("analysisConfig: must be an object")
        analysis = {}

    max_actions = max_age = compaction = None
    if "maxActions" in retention:
        max_actions = _integer(retention["maxActions"], MAX_ACTIONS, "retentionPolicy.maxActions", problems)
    if "maxAge" in retention:
        max_age = _duration(retention["maxAge"], RETENTION_AGE, "retentionPolicy.maxAge", problems,
                            units="h, d or w (e.g. 30d)")
    if "compactionStrategy" in retention:
        if retention["compactionStrategy"] in COMPACTION:
            compaction = str(retention["compactionStrategy"])
        else:
            problems.append(f"retentionPolicy.compactionStrategy: {retention['compactionStrategy']!r} is not one of "
                            + ", ".join(COMPACTION))

    window = threshold = occurrences = None
    if "oscillationWindow" in analysis:
        window = _duration(analysis["oscillationWindow"], ANALYSIS_WINDOW, "analysisConfig.oscillationWindow", problems,
                           units="m, h or d (e.g. 2h)")
    if "effectivenessThreshold" in analysis:
        value = analysis["effectivenessThreshold"]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
            threshold = float(value)
        else:
            problems.append(f"analysisConfig.effectivenessThreshold: {value!r} must be a number from 0 to 1")
    if "patternMinOccurrences" in analysis:
        occurrences = _integer(analysis["patternMinOccurrences"], MIN_OCCURRENCES,
                               "analysisConfig.patternMinOccurrences", problems)
    return TargetSettings(
        analysis=AnalysisConfig(window=window, effectiveness_threshold=threshold, min_occurrences=occurrences),
        retention=RetentionSettings(max_actions=max_actions, max_age=max_age, compaction=compaction),
        problems=tuple(problems),
    )
