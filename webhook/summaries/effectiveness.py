"""``EffectivenessMetric``: the seed's ``ActionEffectiveness`` status for one scope. Pure.

Two scopes: the cluster (one object, named ``cluster``, in the gate's namespace) and each
namespace with assessed actions (one object named ``namespace`` in that namespace). A scope's
status holds, over the last ``period`` (30 days):

* ``byActionType`` — sample size, mean, 95% confidence interval and trend per action type
  (the rules of :mod:`webhook.effectiveness.stats`), and when its last assessed action happened;
* ``byAlertType`` — per alert name, the mean and the most and least effective action type
  (highest / lowest mean; ties go to the larger sample, then the name);
* ``byModel`` — per model, the mean, its trend and a recommended usage, see :func:`recommended_usage`.

``sampleSize``, ``averageScore`` and ``trend`` at the top exist for ``kubectl get`` columns.
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from webhook.actions.model import rfc3339
from webhook.decision.state import dns_name
from webhook.effectiveness.aggregate import ScoredAction
from webhook.effectiveness.stats import Sample, Summary, summarise
from webhook.policy.durations import format_duration
from webhook.policy.model import API_GROUP
from webhook.summaries.targets import API_VERSION, MANAGED_BY, rounded

KIND = "EffectivenessMetric"
PLURAL = "effectivenessmetrics"
CLUSTER_NAME = "cluster"
NAMESPACE_NAME = "namespace"
PERIOD = datetime.timedelta(days=30)

MIN_SAMPLES = 5         # fewer assessed actions say nothing either way: "secondary"
PRIMARY_AT_LEAST = 0.7  # the seed's default effectivenessThreshold
AVOID_BELOW = 0.4


def recommended_usage(summary: Summary) -> str:
    """``primary`` when the mean reaches 0.7, ``avoid`` below 0.4, ``secondary`` in between — and
    ``secondary`` whenever there are fewer than 5 assessed actions to judge by."""
    if summary.sample_size < MIN_SAMPLES:
        return "secondary"
    if summary.mean >= PRIMARY_AT_LEAST:
        return "primary"
    if summary.mean < AVOID_BELOW:
        return "avoid"
    return "secondary"


def _summary(actions: Sequence[ScoredAction]) -> Summary:
    return summarise([Sample(at=a.at, score=a.score) for a in actions])


def _group(actions: Iterable[ScoredAction], key: Callable[[ScoredAction], str | None]) -> dict[str, list[ScoredAction]]:
    groups: dict[str, list[ScoredAction]] = collections.defaultdict(list)
    for action in actions:
        value = key(action)
        if value:
            groups[value].append(action)
    return dict(sorted(groups.items()))


def _ranked(actions: Sequence[ScoredAction]) -> list[str]:
    """Action types, most effective first."""
    by_type = _group(actions, lambda a: a.action_type)
    means = {kind: (sum(a.score for a in group) / len(group), len(group)) for kind, group in by_type.items()}
    return sorted(means, key=lambda kind: (-means[kind][0], -means[kind][1], kind))


def scope_status(actions: Sequence[ScoredAction]) -> dict[str, Any]:
    """The status of one scope from its assessed actions (empty when there are none)."""
    if not actions:
        return {"sampleSize": 0, "effectiveness": {"byActionType": {}, "byAlertType": {}, "byModel": {}}}
    overall = _summary(actions)
    by_action_type = {}
    for kind, group in _group(actions, lambda a: a.action_type).items():
        summary = _summary(group)
        by_action_type[kind] = {
            "sampleSize": summary.sample_size, "averageScore": rounded(summary.mean),
            "confidenceInterval": {"lower": rounded(summary.ci_lower), "upper": rounded(summary.ci_upper)},
            "trend": summary.trend.value, "lastUpdated": rfc3339(max(a.at for a in group)),
        }
    by_alert_type = {}
    for alert, group in _group(actions, lambda a: a.alert_name).items():
        ranked = _ranked(group)
        by_alert_type[alert] = {
            "sampleSize": len(group), "averageScore": rounded(sum(a.score for a in group) / len(group)),
            "mostEffectiveAction": ranked[0], "leastEffectiveAction": ranked[-1],
        }
    by_model = {}
    for model, group in _group(actions, lambda a: a.model_used).items():
        summary = _summary(group)
        by_model[model] = {
            "sampleSize": summary.sample_size, "averageScore": rounded(summary.mean),
            "accuracyTrend": summary.trend.value, "recommendedUsage": recommended_usage(summary),
        }
    return {
        "sampleSize": overall.sample_size,
        "averageScore": rounded(overall.mean),
        "trend": overall.trend.value,
        "effectiveness": {"byActionType": by_action_type, "byAlertType": by_alert_type, "byModel": by_model},
    }


def metric_object(*, namespace: str, name: str, scope_type: str, scope_value: str, status: dict[str, Any],
                  cluster_id: str, period: datetime.timedelta = PERIOD) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**MANAGED_BY, f"{API_GROUP}/cluster-id": dns_name(cluster_id)[:63]}},
        "spec": {"scope": {"scopeType": scope_type, "scopeValue": scope_value},
                 "aggregationPeriod": format_duration(period)},
        "status": status,
    }


def effectiveness_metrics(actions: Sequence[ScoredAction], *, gate_namespace: str,
                          cluster_id: str) -> list[dict[str, Any]]:
    """The cluster-wide object and one per namespace with assessed actions in the period. A
    namespace without any has no object (the summariser deletes one left from before)."""
    objects = [metric_object(namespace=gate_namespace, name=CLUSTER_NAME, scope_type="cluster",
                             scope_value=cluster_id, status=scope_status(actions), cluster_id=cluster_id)]
    for namespace, group in _group(actions, lambda a: a.namespace).items():
        objects.append(metric_object(namespace=namespace, name=NAMESPACE_NAME, scope_type="namespace",
                                     scope_value=namespace, status=scope_status(group), cluster_id=cluster_id))
    return objects
