"""Metrics Service/ServiceMonitor, PrometheusRule alerts and the Grafana dashboard."""

from __future__ import annotations

import json
import re

from chart_helpers import CHART, FULLNAME, NAMESPACE, find, one, render

# Metric names the gate exports (DESIGN + the seed's ai_* metrics).
KNOWN_METRICS = {
    "safety_gate_admission_requests_total",
    "safety_gate_admission_duration_seconds_bucket",
    "safety_gate_admission_duration_seconds_count",
    "safety_gate_admission_duration_seconds_sum",
    "safety_gate_degraded",
    "safety_gate_degraded_decisions_total",
    "safety_gate_outbox_depth",
    "safety_gate_alert_writer_failures_total",
    "safety_gate_pattern_detections",
    "safety_gate_pattern_prevention_success_ratio",
    "safety_gate_pattern_false_positive_ratio",
    "ai_action_history_total",
    "ai_oscillation_detection_total",
    "ai_action_effectiveness_score",
    "ai_retention_operations_total",
    "up",
}
METRIC_RE = re.compile(r"\b((?:safety_gate|ai)_[a-z_]+)\b")


def metric_names(expr: str) -> set[str]:
    return set(METRIC_RE.findall(expr))


def observability_docs():
    return render("cert-manager.yaml")  # serviceMonitor, prometheusRule, dashboard enabled


def test_service_monitor(helm_bin):
    docs = observability_docs()
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service", f"{FULLNAME}-metrics")
    assert sm["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # the main Service must not match the ServiceMonitor (it would scrape :443)
    main = one(docs, "Service", FULLNAME)
    assert not sm["spec"]["selector"]["matchLabels"].items() <= main["metadata"]["labels"].items()


def test_prometheus_rule(helm_bin):
    rule = one(observability_docs(), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"SafetyGateDown", "SafetyGateFailingOpen", "SafetyGateHighLatency",
            "SafetyGateAlertWriterFailing"} <= set(alerts)
    assert alerts["SafetyGateDown"]["expr"].startswith("absent(up{")
    assert f'job="{FULLNAME}-metrics"' in alerts["SafetyGateDown"]["expr"]
    fo = alerts["SafetyGateFailingOpen"]["expr"]
    assert "increase(safety_gate_degraded_decisions_total{" in fo and 'mode="fail-open"' in fo and fo.endswith("> 0")
    lat = alerts["SafetyGateHighLatency"]
    assert "histogram_quantile(0.99" in lat["expr"]
    assert "safety_gate_admission_duration_seconds_bucket" in lat["expr"]
    assert lat["expr"].strip().endswith("> 0.5")
    assert lat["for"] == "10m"
    assert "safety_gate_alert_writer_failures_total" in alerts["SafetyGateAlertWriterFailing"]["expr"]
    for name, a in alerts.items():
        assert a["labels"]["severity"] in {"warning", "critical"}, name
        assert a["annotations"]["summary"], name
        assert metric_names(a["expr"]) <= KNOWN_METRICS, (name, a["expr"])


def test_dashboard_json():
    dash = json.loads((CHART / "dashboards" / "safety-gate.json").read_text())
    assert dash["uid"] == "safety-gate"
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= KNOWN_METRICS, used - KNOWN_METRICS
    for needed in ("safety_gate_admission_requests_total", "safety_gate_admission_duration_seconds_bucket",
                   "ai_oscillation_detection_total", "safety_gate_degraded", "safety_gate_outbox_depth",
                   "safety_gate_alert_writer_failures_total"):
        assert needed in used, needed
    joined = "\n".join(exprs)
    assert "sum by (decision)" in joined
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}," in joined
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_config_map(helm_bin, default_docs):
    assert not [d for d in find(default_docs, "ConfigMap") if "grafana_dashboard" in d["metadata"].get("labels", {})]
    cms = [d for d in find(observability_docs(), "ConfigMap") if d["metadata"]["name"] == f"{FULLNAME}-dashboard"]
    (cm,) = cms
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(cm["data"]["safety-gate.json"])
    assert shipped == json.loads((CHART / "dashboards" / "safety-gate.json").read_text())
