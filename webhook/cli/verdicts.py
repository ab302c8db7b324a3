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

from webhook.engine import report
from webhook.engine.gate import GateResult


def headline(result: GateResult) -> Text:
    response = result.response["response"]
    if response["allowed"]:
        outcome = result.decision.outcome.value if result.decision else "allow"
        return Text(f"ALLOWED ({outcome})", style="bold green")
    return Text(f"DENIED {response['status']['code']}", style="bold red")


def panel(result: GateResult, *, title: str = "safety-gate explain") -> Panel:
    """A verdict panel: what was proposed, the answer, the message, warnings and evidence."""
    info = report.summary(result)
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
