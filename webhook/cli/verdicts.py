"""One gate verdict, described for people (rich) and for programs (JSON).

``explain``, ``replay`` and the MCP tools all show a ``GateResult``; they share this module so
the same decision reads the same everywhere.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from webhook.actions.model import ActionEvent
from webhook.detection.situation import Finding
from webhook.engine.gate import GateResult


def evidence_json(event: ActionEvent) -> dict[str, Any]:
    return {
        "timestamp": event.at.isoformat(), "action_type": event.action_type, "actor": event.actor,
        "summary": event.summary(), "request_uid": event.uid,
    }


def finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "pattern_type": finding.pattern.value,
        "triggered": finding.triggered,
        "severity": finding.severity.value,
        "confidence": round(finding.confidence, 3),
        "summary": finding.summary,
        "strategy": finding.policy.strategy.value,
        "policy": finding.policy.name,
        "scope": finding.scope,
        "counterpart": finding.counterpart,
        "alternative": finding.alternative,
        "evidence": [evidence_json(event) for event in finding.evidence],
    }


def summary(result: GateResult) -> dict[str, Any]:
    """The verdict and why: the response fields plus the decision's pattern, strategy and evidence."""
    response = result.response["response"]
    status = response.get("status") or {}
    body: dict[str, Any] = {
        "uid": response["uid"],
        "allowed": response["allowed"],
        "code": status.get("code"),
        "message": status.get("message"),
        "warnings": list(response.get("warnings") or []),
        "gated": result.decision is not None,
        "dry_run": result.dry_run,
    }
    decision = result.decision
    if decision is None:
        body.update(outcome="allow", pattern=None, strategy=None, findings=[], refused_by=None)
        return body
    event = decision.event
    body.update(
        outcome=decision.outcome.value,
        pattern=decision.pattern or None,
        strategy=decision.strategy.value if decision.strategy else None,
        target=event.target.key if event.target else None,
        action_type=event.action_type,
        change=event.summary(),
        actor=event.actor,
        actor_class=event.actor_class.value,
        findings=[finding_json(f) for f in decision.findings],
        refused_by=None if decision.refused_by is None else {
            "pattern_type": decision.refused_by.pattern.value,
            "strategy": decision.refused_by.strategy.value,
            "until": decision.refused_by.until.isoformat(),
            "alert": decision.refused_by.alert,
            "evidence": decision.refused_by.evidence,
        },
    )
    if decision.outcome.value == "dryrun-deny" and not body["message"]:
        body["message"] = decision.message
    return body


def headline(result: GateResult) -> Text:
    response = result.response["response"]
    if response["allowed"]:
        outcome = result.decision.outcome.value if result.decision else "allow"
        return Text(f"ALLOWED ({outcome})", style="bold green")
    return Text(f"DENIED {response['status']['code']}", style="bold red")


def panel(result: GateResult, *, title: str = "safety-gate explain") -> Panel:
    """A verdict panel: what was proposed, the answer, the message, warnings and evidence."""
    info = summary(result)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("verdict", headline(result))
    if not info["gated"]:
        facts.add_row("why", "not a gated request (or an excluded namespace): allowed and not recorded")
        return Panel(facts, title=title, expand=False)
    facts.add_row("target", info["target"] or "(untargeted)")
    facts.add_row("action", f"{info['action_type']} ({info['change']})")
    facts.add_row("actor", Text(f"{info['actor']} ({info['actor_class']})"))
    facts.add_row("outcome", info["outcome"])
    if info["pattern"]:
        facts.add_row("pattern", info["pattern"] + (f" → {info['strategy']}" if info["strategy"] else ""))
    if info["refused_by"]:
        refused = info["refused_by"]
        facts.add_row("restriction", f"{refused['strategy']} until {refused['until']} ({refused['alert']})")
    if info["message"]:
        facts.add_row("message", Text(info["message"]))
    for warning in info["warnings"]:
        facts.add_row("warning", Text(warning))
    parts: list[Any] = [facts]
    if result.decision is not None and result.decision.findings:
        findings = Table(title="findings", title_justify="left")
        for column in ("pattern", "severity", "confidence", "strategy", "evidence"):
            findings.add_column(column)
        for finding in result.decision.findings:
            findings.add_row(finding.pattern.value, finding.severity.value, f"{finding.confidence:.2f}",
                             finding.policy.strategy.value, finding.summary)
        parts.append(findings)
        evidence = Table(title="evidence", title_justify="left")
        for column in ("time", "action", "change", "actor"):
            evidence.add_column(column)
        for event in result.decision.findings[0].evidence:
            evidence.add_row(event.at.strftime("%Y-%m-%d %H:%M:%S"), event.action_type, event.summary(), event.actor)
        parts.append(evidence)
    border = "green" if info["allowed"] else "red"
    return Panel(Group(*parts), title=title, border_style=border, expand=False)
