"""The Grafana dashboard queries only metrics the gate exports (webhook/metrics.py).

A renamed or dropped metric would leave a panel silently empty; this reads every `expr` of the
dashboard, takes the metric names out of the PromQL and checks each against the names the
gate's prometheus-client metrics expose (counters as `_total`, histograms as `_bucket`/`_sum`/
`_count`). `up` is Prometheus's own scrape-health series.
"""

from __future__ import annotations

import json
import re

from chart_helpers import CHART
from prometheus_client.metrics import MetricWrapperBase

import webhook.metrics

PROMETHEUS_OWN = {"up"}
FUNCTIONS_AND_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "delta", "histogram_quantile", "absent",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "topk",
    "bottomk", "clamp_min", "clamp_max", "label_replace", "vector", "scalar", "time", "sum_over_time",
    "avg_over_time", "max_over_time", "min_over_time", "bool",
}


def exported_names() -> set[str]:
    names: set[str] = set()
    for value in vars(webhook.metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        name, kind = value._name, value._type
        if kind == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        elif kind == "summary":
            names |= {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names.add(name)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names of a PromQL expression: identifiers outside label matchers, ranges,
    grouping clauses and strings that are not functions or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    tokens = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {t for t in tokens if t not in FUNCTIONS_AND_KEYWORDS and not t.startswith("$")}


def dashboard_exprs() -> list[str]:
    exprs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads((CHART / "dashboards" / "safety-gate.json").read_text()))
    return exprs


def test_the_extractor_finds_metric_names():
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b"}[5m])))') == {"x_bucket"}
    assert metric_names('avg by (action_type) (ai_score)') == {"ai_score"}
    assert metric_names('sum(up{job=~".*"}) or vector(0)') == {"up"}
    assert "safety_gate_admission_requests_total" in exported_names()
    assert "safety_gate_admission_duration_seconds_bucket" in exported_names()


def test_every_dashboard_query_uses_only_exported_metrics():
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    known = exported_names() | PROMETHEUS_OWN
    unknown = {name: expr for expr in exprs for name in metric_names(expr) if name not in known}
    assert unknown == {}, f"dashboard queries name metrics the gate does not export: {unknown}"
    used = {name for expr in exprs for name in metric_names(expr)}
    assert {"safety_gate_admission_requests_total", "ai_oscillation_detection_total"} <= used
