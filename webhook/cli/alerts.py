"""``safety-gate alerts``: the detections, as ``kubectl get oa`` would show them.

With a cluster (``--kubeconfig``, or in-cluster) the OscillationAlert objects are listed through
the Kubernetes API, so RBAC applies as for kubectl. Without one, the gate keeps its detections in
PostgreSQL (``oscillation_detections``) and this lists those. Both give the same columns.

Namespaces, as kubectl: ``-n NS`` lists one, ``-A/--all-namespaces`` all of them. With neither,
the cluster path uses the kubeconfig context's namespace; PostgreSQL has no "current namespace",
so it lists all.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import typer
from rich.table import Table

from webhook.actions.model import TargetRef, rfc3339
from webhook.cli import common, engine
from webhook.kube.alerts import target_ref, target_text
from webhook.policy.model import PatternType
from webhook.settings import Settings
from webhook.store.postgres import PostgresStore, create_pool

GROUP, VERSION, PLURAL = "ai.prometheus-alerts-slm.io", "v1", "oscillationalerts"
COLUMNS = ("NAMESPACE", "NAME", "TARGET", "PATTERN", "SEVERITY", "PHASE", "UNTIL", "OCCURRENCES", "DENIED",
           "WARNED")


def run_alerts(settings: Settings, *, namespace: str | None, all_namespaces: bool, as_json: bool) -> None:
    if settings.kubeconfig is not None or settings.in_cluster:
        rows = _from_cluster(settings, namespace=namespace, all_namespaces=all_namespaces)
        source = "cluster"
    else:
        with common.stores(settings, redis=False) as settings:
            rows = asyncio.run(_from_postgres(settings, namespace=None if all_namespaces else namespace))
        source = "postgresql"
    if as_json:
        engine.print_json(rows)
        return
    if not rows:
        where = "any namespace" if all_namespaces or (namespace is None and source == "postgresql") else \
            f"namespace {namespace or 'default'}"
        common.err_console.print(f"no oscillation alerts in {where}")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in COLUMNS:
        table.add_column(column, no_wrap=column not in ("TARGET", "NAME"))
    for row in rows:
        table.add_row(*(str(row[key]) if row[key] is not None else "" for key in _KEYS))
    common.console.print(table)


_KEYS = ("namespace", "name", "target", "pattern", "severity", "phase", "until", "occurrences", "denied", "warned")


def _iso(value: Any) -> str | None:
    """As the OscillationAlert has it: RFC 3339 in whole seconds."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return rfc3339(value)
    return str(value)


def _from_cluster(settings: Settings, *, namespace: str | None, all_namespaces: bool) -> list[dict[str, Any]]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    if settings.in_cluster and settings.kubeconfig is None:
        config.load_incluster_config()
        current = settings.namespace
    else:
        config.load_kube_config(config_file=str(settings.kubeconfig))
        _, context = config.list_kube_config_contexts(config_file=str(settings.kubeconfig))
        current = (context or {}).get("context", {}).get("namespace") or "default"
    api = client.CustomObjectsApi()
    try:
        if all_namespaces:
            listing = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listing = api.list_namespaced_custom_object(GROUP, VERSION, namespace or current, PLURAL)
    except ApiException as exc:
        common.err_console.print(f"[red]cannot list oscillationalerts: {exc.status} {exc.reason}[/red]")
        raise typer.Exit(1) from None
    rows = []
    for item in listing.get("items", []):
        meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status") or {}
        rows.append({
            "namespace": meta.get("namespace"), "name": meta.get("name"), "target": spec.get("target"),
            "pattern": spec.get("patternType"), "severity": spec.get("severity"), "phase": status.get("phase"),
            "until": status.get("cooldownUntil"), "occurrences": status.get("occurrences", 0),
            "denied": status.get("deniedRequests", 0), "warned": status.get("warnedRequests", 0),
        })
    return sorted(rows, key=lambda r: (r["namespace"] or "", r["name"] or ""))


async def _from_postgres(settings: Settings, *, namespace: str | None) -> list[dict[str, Any]]:
    assert settings.postgres_dsn
    pool = await create_pool(settings.postgres_dsn, max_size=2)
    try:
        detections = await PostgresStore(pool, cluster_id=settings.cluster_id).detections(namespace=namespace)
    finally:
        await pool.close()
    rows = [
        {
            "namespace": d["alert_namespace"], "name": d["alert_name"],
            "target": _target(d, cluster_id=settings.cluster_id),
            "pattern": d["pattern_type"], "severity": d["severity"], "phase": d["phase"],
            "until": _iso(d["cooldown_until"]), "occurrences": d["occurrences"], "denied": d["denied_requests"],
            "warned": d["warned_requests"],
        }
        for d in detections
    ]
    return sorted(rows, key=lambda r: (r["namespace"], r["name"]))


def _target(detection: dict[str, Any], *, cluster_id: str) -> str | None:
    """The alert's target as its OscillationAlert names it (cascading-failure: the scope)."""
    try:
        pattern = PatternType(detection["pattern_type"])
    except ValueError:
        return None
    target = None
    if detection["kind"] and detection["name"]:
        target = TargetRef(namespace=detection["namespace"] or "", kind=detection["kind"], name=detection["name"])
    return target_text(target_ref(pattern=pattern, alert_name=detection["alert_name"], target=target,
                                  cluster_id=cluster_id))
