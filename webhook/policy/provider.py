"""The policy in force, layered (DESIGN §4): cluster OscillationPattern objects first, then the
policy file, then the built-in defaults. For each pattern the first policy whose scope matches
a target wins, so a cluster object overrides the file, which overrides the defaults."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from webhook.policy.defaults import default_policies
from webhook.policy.resolved import PatternPolicy, PolicySet
from webhook.policy.target_settings import AnalysisConfig


class PolicyProvider:
    def __init__(self, *, file_policies: Iterable[PatternPolicy] = ()) -> None:
        self._file = tuple(file_policies)
        self._defaults = tuple(default_policies())
        self._cluster: tuple[PatternPolicy, ...] = ()
        self._targets: dict[str, AnalysisConfig] = {}
        self._lock = threading.Lock()
        self._current = self._build()

    def _build(self) -> PolicySet:
        cluster = sorted(self._cluster, key=lambda p: p.name)
        return PolicySet.layered(cluster, self._file, self._defaults, targets=self._targets)

    def set_cluster_policies(self, policies: Iterable[PatternPolicy]) -> None:
        with self._lock:
            self._cluster = tuple(policies)
            self._current = self._build()

    def set_target_settings(self, targets: Mapping[str, AnalysisConfig]) -> None:
        """Per-target ``analysisConfig`` by target key (from the ActionHistorySummaries)."""
        with self._lock:
            self._targets = {key: analysis for key, analysis in targets.items() if not analysis.empty}
            self._current = self._build()

    def __call__(self) -> PolicySet:
        return self._current
