"""The REST API under ``/api/v1/`` (DESIGN §6): history, effectiveness, a safety check that
records nothing, and the OpenAPI document describing them.

Every route answers JSON, errors included (``{"error": ..., "details"?: [...]}``): 400 for a
malformed request, 401/403 for authentication, 404, 405, 422 for a body that fails validation,
503 when a store is unreachable — never a 500. It is a starlette application of its own: its
routes declare their methods, ``AuthenticationMiddleware`` (with ``auth.BearerBackend``) guards
every route but the OpenAPI document, and its exception handlers (``handlers``) shape the errors.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Mount, Route, Router

from webhook.server.api import effectiveness, history, openapi, safety
from webhook.server.api.auth import backend_for, refused
from webhook.server.api.handlers import exception_handlers
from webhook.settings import Settings

PREFIX = "/api/v1"


def mount(settings: Settings, *, state: State) -> Mount:
    """The API, mounted under ``PREFIX``; ``state`` is the process app's (handlers find the gate
    in ``request.app.state``, and inside the mount ``request.app`` is the API's own application)."""
    protected = Router(routes=[
        Route("/history", history.list_history, methods=["GET"]),
        Route("/actions/{id:int}/effectiveness", effectiveness.assess, methods=["POST"]),
        Route("/actions/by-correlation/{correlation_id}/effectiveness", effectiveness.assess_correlation,
              methods=["POST"]),
        Route("/effectiveness", effectiveness.report, methods=["GET"]),
        Route("/safety-check", safety.check, methods=["POST"]),
    ], middleware=[Middleware(AuthenticationMiddleware, backend=backend_for(settings), on_error=refused)])
    api = Starlette(routes=[Route("/openapi.json", openapi.document, methods=["GET"]), Mount("", app=protected)],
                    exception_handlers=exception_handlers())
    api.state = state
    return Mount(PREFIX, app=api)
