"""The words of a decision: one line a person understands (DESIGN §5)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from webhook.actions.model import TargetRef, rfc3339
from webhook.detection.situation import Breadth, Finding, Reach

PREFIX = "safety-gate:"


def seconds_left(until: datetime.datetime, now: datetime.datetime) -> int:
    return max(0, int((until - now).total_seconds() + 0.999))


def subject(pattern: str, target: TargetRef | None, scope: Reach = Reach.TARGET) -> str:
    if scope.breadth is Breadth.NAMESPACE:
        return f"{pattern} in namespace {scope.namespace}"
    if scope.breadth is Breadth.CLUSTER or target is None:
        return f"{pattern} across the cluster"
    return f"{pattern} on {target.display}"


def see_alert(alert: str) -> str:
    return f"see oscillationalert {alert}"


def also_matched(others: Sequence[Finding]) -> str:
    if not others:
        return ""
    return "; also matched: " + ", ".join(f"{f.pattern.value} ({f.summary})" for f in others)


def cooling(*, finding: Finding, target: TargetRef | None, until: datetime.datetime, now: datetime.datetime,
            alert: str, others: Sequence[Finding] = ()) -> str:
    return (
        f"{PREFIX} {subject(finding.pattern.value, target, finding.scope)}: {finding.summary}; "
        f"cooling period until {rfc3339(until)} ({seconds_left(until, now)}s left)"
        f"{also_matched(others)}; {see_alert(alert)}"
    )


def blocked(*, finding: Finding, target: TargetRef | None, until: datetime.datetime, now: datetime.datetime,
            alert: str, hpa: str | None = None, others: Sequence[Finding] = ()) -> str:
    advice = ""
    if finding.counterpart:
        owner = f"the HorizontalPodAutoscaler {hpa}" if hpa else finding.counterpart
        advice = f"; {owner} manages replicas here: change its bounds (minReplicas/maxReplicas) instead"
    return (
        f"{PREFIX} {subject(finding.pattern.value, target, finding.scope)}: {finding.summary}; "
        f"blocked until {rfc3339(until)} ({seconds_left(until, now)}s left){advice}"
        f"{also_matched(others)}; {see_alert(alert)}"
    )


def alternative(*, finding: Finding, target: TargetRef | None, alert: str, suggestion: str | None,
                others: Sequence[Finding] = ()) -> str:
    proposal = f"try {suggestion} instead" if suggestion else "escalate to a person instead"
    return (
        f"{PREFIX} {subject(finding.pattern.value, target, finding.scope)}: {finding.summary}; "
        f"denied: {proposal}{also_matched(others)}; {see_alert(alert)}"
    )


def escalated(*, finding: Finding, target: TargetRef | None, alert: str, reason: str = "",
              others: Sequence[Finding] = ()) -> str:
    return (
        f"{PREFIX} {subject(finding.pattern.value, target, finding.scope)}: {finding.summary}{reason}; "
        f"escalated to a person: approve with 'safety-gate approve {alert} --reason ...' "
        f"or set spec.approval on the alert{also_matched(others)}; {see_alert(alert)}"
    )


def refused_by_restriction(*, kind: str, pattern: str, target: TargetRef | None, evidence: str,
                           until: datetime.datetime, now: datetime.datetime, alert: str, scope: Reach) -> str:
    return (
        f"{PREFIX} {subject(pattern, target, scope)}: {evidence}; {kind} until {rfc3339(until)} "
        f"({seconds_left(until, now)}s left); {see_alert(alert)}"
    )


def would_deny(finding: Finding, target: TargetRef | None) -> str:
    return f"{PREFIX} would deny: {subject(finding.pattern.value, target, finding.scope)}: {finding.summary}"


def near_miss(finding: Finding, target: TargetRef | None) -> str:
    return f"{PREFIX} one more such change triggers {subject(finding.pattern.value, target, finding.scope)}"


WARNING_LIMIT = 120  # what the API server keeps of one admission warning (DESIGN §5)
_CONTINUED = PREFIX + " "


def warning_lines(text: str, *, limit: int = WARNING_LIMIT) -> list[str]:
    """One message as admission warnings of at most ``limit`` characters each, nothing cut.

    A person's refusal-turned-warning is a whole decision message, longer than a warning may be;
    clipped, it lost exactly the parts a person acts on (until when, which alert). So it is split
    at its clauses (``; ``), each line marked ``safety-gate:``; a clause too long for a line (long
    names) is wrapped at spaces, and a word too long for one at the limit.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return [text]
    body = text[len(PREFIX):].lstrip() if text.startswith(PREFIX) else text
    width = limit - len(_CONTINUED)
    lines: list[str] = []
    current = ""
    for clause in body.split("; "):
        joined = f"{current}; {clause}" if current else clause
        if len(joined) <= width:
            current = joined
            continue
        if current:
            lines.append(current)
        pieces = _wrap(clause, width)
        lines.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        lines.append(current)
    return [_CONTINUED + line for line in lines]


def split_warnings(warnings: Sequence[str], *, limit: int = WARNING_LIMIT) -> list[str]:
    return [line for warning in warnings for line in warning_lines(warning, limit=limit)]


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        joined = f"{current} {word}" if current else word
        if len(joined) <= width:
            current = joined
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return [line for line in lines if line] or [""]
