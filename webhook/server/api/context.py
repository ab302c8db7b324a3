"""What handlers take from the running process: the gate, its stores, the clock."""

from __future__ import annotations

import datetime

from starlette.requests import Request

from webhook.engine.gate import Gate
from webhook.server.api.errors import ApiError
from webhook.store.history import HistoryStore
from webhook.store.postgres import PostgresStore


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def gate_of(request: Request) -> Gate:
    gate = getattr(request.app.state, "gate", None)
    if gate is None:
        raise ApiError(503, "the gate is starting; try again")
    return gate


def history_of(request: Request) -> HistoryStore:
    return gate_of(request).history


def postgres_of(request: Request) -> PostgresStore:
    return history_of(request).postgres
