"""``GET /api/v1/history``: recorded actions, newest first, a page at a time.

Pages are keyed on ``(action_timestamp, id)``, the order of the index, with an opaque cursor:
rows recorded while a client pages never shift a page or repeat a row, unlike an offset.
"""

from __future__ import annotations

import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from webhook.actions.model import ActionEvent
from webhook.admission.extract import canonical_kind
from webhook.server.api import params, schemas
from webhook.server.api.context import history_of, utcnow
from webhook.store.actions import ActionFilter, ActionLog
from webhook.store.confirmation import ActionStatus
from webhook.store.effectiveness import as_score

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


async def list_history(request: Request) -> JSONResponse:
    query = request.query_params
    now = utcnow()
    namespace = params.text(query, "namespace")
    kind = params.text(query, "kind", max_length=63)
    name = params.text(query, "name")
    action_type = params.text(query, "action_type", max_length=128)
    since = params.moment(query, "since", now=now)
    until = params.moment(query, "until", now=now)
    limit = params.integer(query, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    cursor = params.decode_cursor(query)
    history = history_of(request)
    log = ActionLog(history.postgres.pool, cluster_id=history.postgres.cluster_id)
    where = ActionFilter(namespace=namespace, kind=canonical_kind(kind) if kind else None, name=name,
                         action_type=action_type, since=since, until=until)
    rows = await history.in_postgres(lambda: log.page(where, after=cursor, limit=limit + 1))
    items = [item(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = params.encode_cursor(last["action_timestamp"], last["id"])
    return JSONResponse(schemas.dump(schemas.HistoryPage(items=items, next_cursor=next_cursor)))


def effectiveness_of(row) -> schemas.Effectiveness | None:  # type: ignore[no-untyped-def]
    if row["effectiveness_score"] is None:
        return None
    return schemas.Effectiveness(
        score=as_score(row["effectiveness_score"]), criteria=row["effectiveness_criteria"] or {},
        method=row["effectiveness_method"] or "manual",
        assessed_at=row["effectiveness_assessed_at"] or datetime.datetime.now(datetime.timezone.utc),
        notes=row["effectiveness_notes"])


def item(row) -> schemas.HistoryItem:  # type: ignore[no-untyped-def]
    target = None
    if row["namespace"] and row["kind"] and row["name"]:
        target = schemas.Target(namespace=row["namespace"], kind=row["kind"], name=row["name"])
    try:
        summary = ActionEvent.from_json(row["event"]).summary()
    except (KeyError, TypeError, ValueError):
        summary = row["action_type"]
    return schemas.HistoryItem(
        id=row["id"], request_uid=row["request_uid"], timestamp=row["action_timestamp"], target=target,
        action_type=row["action_type"], actor=row["actor"], actor_class=row["actor_class"],
        object_kind=row["object_kind"], summary=summary, alert_name=row["alert_name"],
        correlation_id=row["correlation_id"], model_used=row["model_used"],
        model_confidence=None if row["model_confidence"] is None else as_score(row["model_confidence"]),
        replicas_before=row["replicas_before"],
        replicas_after=row["replicas_after"], bypass_reason=row["bypass_reason"],
        is_pattern_example=row["is_pattern_example"], effectiveness=effectiveness_of(row),
        status=row["status"] or ActionStatus.RECORDED.value,
    )
