"""The REST API under ``/api/v1/`` (DESIGN §6): history, effectiveness, a safety check that
records nothing, and the OpenAPI document describing them.

Every route answers JSON, errors included (``{"error": ..., "details"?: [...]}``): 400 for a
malformed request, 401/403 for authentication, 404, 405, 422 for a body that fails validation,
503 when a store is unreachable — never a 500. Authentication: see ``auth``.
"""

from __future__ import annotations

from starlette.routing import Mount, Route, Router

from webhook.server.api import effectiveness, errors, history, openapi, safety
from webhook.server.api.auth import authenticator_for
from webhook.server.api.handlers import ALL_METHODS, endpoint
from webhook.settings import Settings

PREFIX = "/api/v1"


def mount(settings: Settings) -> Mount:
    auth = authenticator_for(settings)
    routes = [
        Route("/openapi.json", endpoint(auth=None, get=openapi.document), methods=ALL_METHODS),
        Route("/history", endpoint(auth=auth, get=history.list_history), methods=ALL_METHODS),
        Route("/actions/{id:int}/effectiveness", endpoint(auth=auth, post=effectiveness.assess),
              methods=ALL_METHODS),
        Route("/actions/by-correlation/{correlation_id}/effectiveness",
              endpoint(auth=auth, post=effectiveness.assess_correlation), methods=ALL_METHODS),
        Route("/effectiveness", endpoint(auth=auth, get=effectiveness.report), methods=ALL_METHODS),
        Route("/safety-check", endpoint(auth=auth, post=safety.check), methods=ALL_METHODS),
    ]
    return Mount(PREFIX, app=Router(routes=routes, default=errors.not_found))
