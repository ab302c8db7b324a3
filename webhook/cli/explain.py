"""``safety-gate explain FILE``: what the webhook would answer to one AdmissionReview, and why.

The review goes through ``Gate.review(request, record=False)`` against the configured stores —
the webhook's own path with ``dryRun`` forced on — so the answer is the one a dry-run
``POST /validate`` gives at this moment, and nothing is recorded: no action, no alert, no
cooling period. Exit code 0 when the change would be allowed, 1 when denied, 2 for bad input.
"""

from __future__ import annotations

import asyncio

import typer

from webhook.admission.review import BadReview, parse_review
from webhook.cli import common, engine, verdicts
from webhook.engine.gate import GateResult
from webhook.settings import Settings


def run_explain(settings: Settings, *, source: str, as_json: bool) -> None:
    body = engine.read_input(source)
    try:
        review = parse_review(body)
    except BadReview as exc:
        common.err_console.print(f"[red]not an AdmissionReview v1: {exc}[/red]")
        raise typer.Exit(2) from None
    with engine.runtime_on_stores(settings) as runtime:
        result = asyncio.run(_explain(runtime, review.request))
    if as_json:
        engine.print_json(result.response)
    else:
        common.console.print(verdicts.panel(result))
    raise typer.Exit(0 if result.response["response"]["allowed"] else 1)


async def _explain(runtime, request) -> GateResult:  # type: ignore[no-untyped-def]
    async with engine.running(runtime):
        assert runtime.gate is not None
        return await runtime.gate.review(request, record=False)
