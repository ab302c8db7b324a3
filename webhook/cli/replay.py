"""``safety-gate replay FILE``: run a recorded sequence of AdmissionReviews through the gate, in order.

Replay answers "what would the gate have done with this sequence?", so it must behave like the
webhook: each admitted action is recorded before the next review is decided, so later reviews
see earlier ones (that is how oscillation forms). By default it records into the configured
stores — which means it *adds to real history*. ``--fresh`` instead runs against a throwaway
embedded PostgreSQL and Redis under a temporary directory, removed afterwards, so a what-if never
pollutes the history the webhook decides on. ``--no-record`` decides every review against the
history as it stands and records nothing (each review is judged alone, like ``explain``).

A review's own ``dryRun: true`` is honoured exactly as the webhook honours it. A malformed entry
is reported as the webhook's 400 would be, and the replay goes on.

Input: a JSON array of AdmissionReviews, a single AdmissionReview, or JSON lines (one per line).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import tempfile
from collections.abc import Iterator
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from webhook.admission.review import BadReview, parse_review
from webhook.cli import common, engine
from webhook.engine import report
from webhook.server.runtime import Runtime
from webhook.settings import Settings

PROGRESS_THRESHOLD = 20  # below this a progress bar is only noise


class ReplayInputError(ValueError):
    pass


def load_reviews(body: bytes) -> list[Any]:
    """The entries of a JSON array, a single JSON object, or JSON lines, in file order."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        entries: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ReplayInputError(f"line {number}: not JSON ({exc.msg})") from None
        return entries
    if isinstance(data, list):
        return data
    return [data]


def run_replay(settings: Settings, *, source: str, record: bool, fresh: bool, as_json: bool) -> None:
    try:
        entries = load_reviews(engine.read_input(source))
    except ReplayInputError as exc:
        common.err_console.print(f"[red]{source}: {exc}[/red]")
        raise typer.Exit(2) from None
    with _maybe_fresh(settings, fresh=fresh) as settings, engine.runtime_on_stores(settings) as runtime:
        rows = asyncio.run(_replay(runtime, entries, record=record))
    if as_json:
        engine.print_json(rows)
        return
    common.console.print(_timeline(rows, title=_title(source, record=record, fresh=fresh)))
    allowed = sum(1 for row in rows if row["allowed"] is True)
    denied = sum(1 for row in rows if row["allowed"] is False and row["code"] != 400)
    bad = sum(1 for row in rows if row["code"] == 400)
    common.console.print(f"{len(rows)} review(s): {allowed} allowed, {denied} denied, {bad} malformed")


@contextlib.contextmanager
def _maybe_fresh(settings: Settings, *, fresh: bool) -> Iterator[Settings]:
    """``settings``, or with ``fresh`` a copy on new embedded stores in a scratch data dir."""
    if not fresh:
        yield settings
        return
    with tempfile.TemporaryDirectory(prefix="safety-gate-replay-") as scratch:
        yield settings.with_values(postgres_dsn=None, redis_url=None, data_dir=pathlib.Path(scratch))


async def _replay(runtime: Runtime, entries: list[Any], *, record: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    progress = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=common.err_console, transient=True,
                        disable=len(entries) < PROGRESS_THRESHOLD)
    async with engine.running(runtime):
        assert runtime.gate is not None
        with progress:
            task = progress.add_task("replay", total=len(entries))
            for index, entry in enumerate(entries, start=1):
                rows.append({"index": index, **await _one(runtime, entry, record=record)})
                progress.advance(task)
    return rows


async def _one(runtime: Runtime, entry: Any, *, record: bool) -> dict[str, Any]:
    assert runtime.gate is not None
    try:
        review = parse_review(json.dumps(entry).encode())
    except BadReview as exc:
        uid = entry.get("request", {}).get("uid") if isinstance(entry, dict) and isinstance(
            entry.get("request"), dict) else None
        return {"uid": uid, "allowed": None, "code": 400, "message": str(exc), "warnings": [], "gated": False,
                "outcome": "bad-request", "pattern": None}
    try:
        result = await runtime.gate.review(review.request, record=record)
    except Exception as exc:  # noqa: BLE001 - a store failed mid-replay: say so for this entry and carry on
        return {"uid": review.request.uid, "allowed": None, "code": None, "message": f"error: {exc}",
                "warnings": [], "gated": True, "outcome": "error", "pattern": None}
    return report.summary(result)


def _title(source: str, *, record: bool, fresh: bool) -> str:
    where = "a throwaway database" if fresh else "the configured stores"
    mode = "recording into" if record else "not recording, against"
    return f"replay of {source} ({mode} {where})"


def _timeline(rows: list[dict[str, Any]], *, title: str) -> Table:
    table = Table(title=title)
    for column in ("#", "uid", "target", "action", "change", "actor", "decision", "pattern", "message"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row["code"] == 400:
            verdict = "[red]400 malformed[/red]"
        elif row["allowed"] is None:
            verdict = "[yellow]error[/yellow]"
        elif row["allowed"]:
            verdict = f"[green]allowed[/green] ({row['outcome']})"
        else:
            verdict = f"[red]denied {row['code']}[/red]"
        message = row.get("message") or "; ".join(row.get("warnings") or [])
        table.add_row(str(row["index"]), Text(str(row.get("uid") or "-")[:8]), Text(row.get("target") or "-"),
                      row.get("action_type") or "-", Text(row.get("change") or "-"), Text(row.get("actor") or "-"),
                      verdict, row.get("pattern") or "", Text(message))
    return table
