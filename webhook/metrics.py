"""Prometheus metrics (DESIGN §6, the seed's names plus the gate's own). Labels are bounded:
namespaces, kinds, action types, patterns and outcomes — never resource names or users.

With ``serve --workers N`` (N ≥ 2) every worker writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` (set by the parent before the worker starts: prometheus-client picks
its value class at import) and each /metrics reports the pod's totals: counters and histograms are
summed over the workers, dead ones included (what they counted happened); each gauge says how its
workers' values combine (``multiprocess_mode``, ignored in one process). ``live*`` modes drop a dead
worker's value, which the parent marks dead when it reaps it.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Where the workers of a pod keep their values; unset in a single process.
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST


def exposition() -> bytes:
    """The text /metrics answers: this process's registry, or with workers the pod's totals.

    A fresh registry per scrape, as prometheus-client's multiprocess mode requires: the collector
    reads every worker's files when it is collected.
    """
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return generate_latest()
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


ACTION_HISTORY = Counter(
    "ai_action_history_total", "Admitted actions recorded in the history",
    ["namespace", "resource_kind", "action_type"])
DETECTIONS = Counter(
    "ai_oscillation_detection_total", "Oscillation patterns detected",
    ["pattern_type", "namespace", "severity"])
EFFECTIVENESS = Gauge(
    "ai_action_effectiveness_score", "Mean effectiveness score of an action type",
    ["action_type", "scope", "model_used"], multiprocess_mode="mostrecent")
RETENTION_OPERATIONS = Counter(
    "ai_retention_operations_total", "Retention runs",
    ["strategy", "namespace", "result"])
REQUESTS = Counter(
    "safety_gate_admission_requests_total", "Admission requests by outcome",
    ["decision", "pattern", "dry_run"])
LATENCY = Histogram(
    "safety_gate_admission_duration_seconds", "Time to decide an admission request",
    ["decision"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
BAD_REQUESTS = Counter(
    "safety_gate_bad_requests_total", "Bodies refused with 400 (not an AdmissionReview v1)")
OVERLOADED_REQUESTS = Counter(
    "safety_gate_overloaded_requests_total",
    "Reviews beyond an in-flight limit: automation refused 429 (to retry), people and observed actors "
    "admitted and recorded", ["actor_class", "reason"])
DEGRADED = Gauge(
    "safety_gate_degraded", "1 while a store is unreachable", ["store"], multiprocess_mode="livemax")
DEGRADED_DECISIONS = Counter(
    "safety_gate_degraded_decisions_total",
    "Decisions taken without a store, without the target's full window, or without their lock; mode: what "
    "the gate did (decided, fail-open, fail-closed, retry), reason: what it lacked", ["mode", "reason"])
DEAD_LETTERS = Counter(
    "safety_gate_dead_letters_total",
    "Decision bundles PostgreSQL refused, kept as dead letters (resolution: sanitized = a cleaned copy "
    "was recorded, held = only the dead letter has it)", ["resolution"])
OUTBOX_DEPTH = Gauge(
    "safety_gate_outbox_depth", "Admitted actions waiting to be written to PostgreSQL", multiprocess_mode="livemax")
ALERT_WRITER_FAILURES = Counter(
    "safety_gate_alert_writer_failures_total", "Failed attempts to write an OscillationAlert")
SUMMARY_WRITES = Counter(
    "safety_gate_summary_writes_total", "Writes of ActionHistorySummary / EffectivenessMetric objects",
    ["kind", "operation", "result"])
SUMMARY_LAG = Gauge(
    "safety_gate_summary_lag_seconds", "How far the summaries are behind the history (leader only)",
    multiprocess_mode="livemax")
# Per OscillationPattern object (webhook/kube/pattern_status.py): ``policy`` is the object's name,
# bounded by the policies an administrator creates, not by traffic.
PATTERN_DETECTIONS = Gauge(
    "safety_gate_pattern_detections", "Detections by an OscillationPattern policy in the last 30 days",
    ["policy", "pattern_type"], multiprocess_mode="livemostrecent")
PATTERN_PREVENTION_SUCCESS = Gauge(
    "safety_gate_pattern_prevention_success_ratio",
    "Share of a policy's judged refusals after which the pattern did not form again on that target within its window",
    ["policy", "pattern_type"], multiprocess_mode="livemostrecent")
PATTERN_FALSE_POSITIVES = Gauge(
    "safety_gate_pattern_false_positive_ratio",
    "Share of a policy's refusals overridden by an approval or a bypass within its window",
    ["policy", "pattern_type"], multiprocess_mode="livemostrecent")
