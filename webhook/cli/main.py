"""The ``safety-gate`` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import pathlib
from typing import Annotated, Any, Optional

import typer

from webhook.cli import common, options

app = typer.Typer(
    name="safety-gate",
    help="A validating admission webhook that stops automated remediation from oscillating.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Opt = typer.Option


@app.command()
def serve(
    host: Annotated[Optional[str], Opt(help="Address to listen on.")] = None,
    port: Annotated[Optional[int], Opt(help="HTTPS port (8443).")] = None,
    metrics_port: Annotated[Optional[int], Opt(help="Also serve /metrics over plain HTTP on this port.")] = None,
    tls_cert: Annotated[Optional[pathlib.Path], Opt(help="Serving certificate (PEM).")] = None,
    tls_key: Annotated[Optional[pathlib.Path], Opt(help="Serving key (PEM).")] = None,
    validate_client_ca: Annotated[Optional[pathlib.Path], Opt(help="CA (PEM) of the API server's admission client "
                                                                   "certificate: /validate refuses callers "
                                                                   "without one.")] = None,
    postgres_dsn: options.PostgresDsn = None,
    redis_url: options.RedisUrl = None,
    data_dir: options.DataDir = None,
    policy: options.Policy = None,
    kubeconfig: options.Kubeconfig = None,
    cluster_id: options.ClusterId = None,
    fail_closed: Annotated[Optional[bool], Opt("--fail-closed/--fail-open", help="Refuse when history is unavailable.")] = None,
    summaries: Annotated[Optional[bool], Opt("--summaries/--no-summaries",
                                             help="Keep ActionHistorySummary/EffectivenessMetric objects "
                                                  "current (with a cluster).")] = None,
    max_in_flight: Annotated[Optional[int], Opt(min=0, help="Reviews decided at once (64); beyond it automation "
                                                           "gets 429 + Retry-After. 0: no limit.")] = None,
    max_in_flight_per_actor: Annotated[Optional[int], Opt(min=0, help="Reviews of one actor decided at once "
                                                                     "(16). 0: no limit.")] = None,
    workers: options.Workers = None,
    log_level: options.LogLevel = None,
    log_format: options.LogFormatOption = None,
    api_token_file: Annotated[Optional[pathlib.Path], Opt(help="Bearer tokens for /api/v1 without a cluster: "
                                                                "one 'token[,username]' per line.")] = None,
) -> None:
    """Run the HTTPS admission webhook."""
    from webhook.cli.serve import run_server

    settings = common.settings(**_given(locals()))
    run_server(settings)


@app.command()
def migrate(
    postgres_dsn: options.PostgresDsn = None,
    data_dir: options.DataDir = None,
) -> None:
    """Apply the SQL migrations in order, under an advisory lock."""
    from webhook.store.migrate import migrate as run

    settings = common.settings(**_given(locals()))
    with common.stores(settings, redis=False) as settings:
        assert settings.stores.postgres_dsn is not None  # the embedded server's, when none was given
        applied = asyncio.run(run(settings.stores.postgres_dsn))
    common.console.print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@app.command()
def certs(
    out: Annotated[pathlib.Path, Opt(help="Directory for ca.crt, tls.crt, tls.key.")] = pathlib.Path("certs"),
    host: Annotated[list[str], Opt("--host", help="Extra DNS name or IP for the serving certificate.")] = [],  # noqa: B006 (typer reads, never mutates)
) -> None:
    """Write a development CA and serving certificate (localhost, 127.0.0.1)."""
    from webhook.tls.selfsigned import ensure_serving_pair

    ca, cert, key = ensure_serving_pair(out, hosts=("localhost", "127.0.0.1", *host))
    common.console.print(f"CA: {ca}\ncertificate: {cert}\nkey: {key}")


@app.command()
def approve(
    alert: Annotated[str, typer.Argument(help="NAMESPACE/ALERT")],
    reason: Annotated[str, Opt(help="Why this action may proceed.")],
    approved_by: Annotated[Optional[str], Opt(help=(
        "Who approves, without a cluster (default: the OS user). With a cluster the approval records "
        "your Kubernetes identity (SelfSubjectReview); if given, this must match it."))] = None,
    postgres_dsn: options.PostgresDsn = None,
    data_dir: options.DataDir = None,
    kubeconfig: options.Kubeconfig = None,
    cluster_id: options.ClusterId = None,
) -> None:
    """Approve an escalation: the next matching action within 1h is allowed once."""
    from webhook.cli.approve import run_approve

    settings = common.settings(**_given(locals(), skip={"alert", "reason", "approved_by"}))
    run_approve(settings, alert=alert, reason=reason, approved_by=approved_by)


@app.command()
def history(
    target: Annotated[str, typer.Argument(help="NAMESPACE/KIND/NAME")],
    since: Annotated[str, Opt(help="How far back (e.g. 2h, 7d).")] = "24h",
    postgres_dsn: options.PostgresDsn = None,
    data_dir: options.DataDir = None,
    cluster_id: options.ClusterId = None,
) -> None:
    """Print a target's action timeline."""
    from webhook.cli.history import run_history

    settings = common.settings(**_given(locals(), skip={"target", "since"}))
    run_history(settings, target=target, since=since)


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="An AdmissionReview JSON file, or - for stdin.")],
    json_output: Annotated[bool, Opt("--json", help="Print the AdmissionReview response as JSON.")] = False,
    postgres_dsn: options.PostgresDsn = None,
    redis_url: options.RedisUrl = None,
    data_dir: options.DataDir = None,
    policy: options.Policy = None,
    cluster_id: options.ClusterId = None,
) -> None:
    """Show what the webhook would answer to one review, and why; records nothing (exit 0 allowed, 1 denied)."""
    from webhook.cli.explain import run_explain

    settings = common.settings(**_given(locals(), skip={"file", "json_output"}))
    run_explain(settings, source=file, as_json=json_output)


@app.command()
def replay(
    file: Annotated[str, typer.Argument(help="A JSON array or JSON-lines file of AdmissionReviews, or -.")],
    record: Annotated[bool, Opt("--record/--no-record",
                                help="Record admitted actions so later reviews see earlier ones (as the webhook).")] = True,
    fresh: Annotated[bool, Opt("--fresh", help="Use a throwaway embedded database; real history is untouched.")] = False,
    json_output: Annotated[bool, Opt("--json", help="Print the decisions as a JSON array.")] = False,
    postgres_dsn: options.PostgresDsn = None,
    redis_url: options.RedisUrl = None,
    data_dir: options.DataDir = None,
    policy: options.Policy = None,
    cluster_id: options.ClusterId = None,
) -> None:
    """Run a sequence of reviews through the gate in order and print the decision timeline."""
    from webhook.cli.replay import run_replay

    settings = common.settings(**_given(locals(), skip={"file", "record", "fresh", "json_output"}))
    run_replay(settings, source=file, record=record, fresh=fresh, as_json=json_output)


@app.command()
def alerts(
    namespace: Annotated[Optional[str], Opt("--namespace", "-n", help="Only this namespace.")] = None,
    all_namespaces: Annotated[bool, Opt("--all-namespaces", "-A", help="Every namespace.")] = False,
    json_output: Annotated[bool, Opt("--json", help="Print the rows as JSON.")] = False,
    kubeconfig: Annotated[Optional[pathlib.Path], Opt(help="List OscillationAlerts from this cluster.")] = None,
    postgres_dsn: Annotated[Optional[str], Opt(help="Without a cluster: PostgreSQL DSN of the detections.")] = None,
    data_dir: options.DataDir = None,
    cluster_id: options.ClusterId = None,
) -> None:
    """List oscillation alerts (the cluster's OscillationAlerts, or PostgreSQL's detections without one)."""
    from webhook.cli.alerts import run_alerts

    settings = common.settings(**_given(locals(), skip={"namespace", "all_namespaces", "json_output"}))
    run_alerts(settings, namespace=namespace, all_namespaces=all_namespaces, as_json=json_output)


@app.command()
def mcp(
    transport: Annotated[str, Opt(help="stdio or streamable-http.")] = "stdio",
    host: Annotated[str, Opt(help="Address for streamable-http.")] = "127.0.0.1",
    port: Annotated[int, Opt(help="Port for streamable-http.")] = 8000,
    postgres_dsn: options.PostgresDsn = None,
    redis_url: options.RedisUrl = None,
    data_dir: options.DataDir = None,
    policy: options.Policy = None,
    cluster_id: options.ClusterId = None,
    log_level: options.LogLevel = None,
    log_format: options.LogFormatOption = None,
) -> None:
    """Serve the MCP tools (check_action_history, detect_oscillation_patterns, get_action_effectiveness,
    validate_action_safety) to AI agents."""
    from webhook.cli.mcp import run_mcp

    if transport not in ("stdio", "streamable-http"):
        common.err_console.print(f"[red]--transport must be stdio or streamable-http, got {transport!r}[/red]")
        raise typer.Exit(2)
    settings = common.settings(**_given(locals(), skip={"transport", "host", "port"}))
    run_mcp(settings, transport=transport, host=host, port=port)


@app.command()
def cleanup(
    webhook_config: Annotated[Optional[str], Opt(help="Name of the ValidatingWebhookConfiguration to delete.")] = None,
    kubeconfig: Annotated[Optional[pathlib.Path], Opt(help="Kubeconfig (default: in-cluster).")] = None,
) -> None:
    """Delete the gate's ValidatingWebhookConfiguration (the chart's pre-delete hook); already gone is fine."""
    from webhook.kube.cleanup import CleanupError, delete_webhook_configuration

    settings = common.settings(**_given(locals()))
    if not settings.kube.webhook_config:
        common.err_console.print("[red]--webhook-config (or SAFETY_GATE_WEBHOOK_CONFIG) is required[/red]")
        raise typer.Exit(2)
    try:
        deleted = delete_webhook_configuration(settings, name=settings.kube.webhook_config)
    except CleanupError as exc:
        common.err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    state = "deleted" if deleted else "already gone"
    common.console.print(f"ValidatingWebhookConfiguration {settings.kube.webhook_config}: {state}")


def _given(values: dict[str, Any], *, skip: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """Only flags actually given override the environment and defaults."""
    return {key: value for key, value in values.items() if value is not None and key not in skip}


from webhook.cli.retention import app as retention_app  # noqa: E402  (after the commands above)

app.add_typer(retention_app, name="retention")

from webhook.cli.dead_letters import dead_letters  # noqa: E402

app.command("dead-letters")(dead_letters)


if __name__ == "__main__":
    app()
