"""One wrapper for every API route: method dispatch, authentication, and errors as JSON.

Starlette answers an unknown method with a plain-text 405 and lets exceptions become 500s; the
API promises JSON errors and never a 500, so each route takes every method and dispatches here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg
import redis.exceptions
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhook.server.api.auth import Authenticator
from webhook.server.api.errors import ApiError
from webhook.store.errors import StoreError

logger = logging.getLogger(__name__)

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[[Request], Awaitable[Response]]
STORE_ERRORS = (StoreError, asyncpg.PostgresError, asyncpg.InterfaceError, redis.exceptions.RedisError, OSError, TimeoutError)
# Reads need ``get`` on oscillationalerts, writes ``create`` (see auth).
VERBS = {"GET": "get", "HEAD": "get", "POST": "create"}


def endpoint(*, auth: Authenticator | None, get: Handler | None = None, post: Handler | None = None) -> Handler:
    handlers = {method: handler for method, handler in (("GET", get), ("HEAD", get), ("POST", post)) if handler}
    allow = ", ".join(m for m in ("GET", "HEAD", "POST") if m in handlers)

    async def route(request: Request) -> Response:
        try:
            handler = handlers.get(request.method)
            if handler is None:
                raise ApiError(405, f"method {request.method} not allowed here; allowed: {allow}",
                               headers={"Allow": allow})
            if auth is not None:
                request.state.principal = await auth.authenticate(request, verb=VERBS[request.method])
            return await handler(request)
        except ApiError as error:
            return error.response()
        except STORE_ERRORS as exc:
            logger.warning("api %s %s: store unavailable: %s", request.method, request.url.path, exc)
            return JSONResponse({"error": f"history store unavailable ({type(exc).__name__}); try again"},
                                status_code=503, headers={"Retry-After": "5"})
        except Exception as exc:  # a bug: say so without a stack trace on the wire, and never a 500
            logger.exception("api %s %s failed", request.method, request.url.path)
            return JSONResponse({"error": f"the request could not be handled ({type(exc).__name__}); "
                                          "see the gate's log"}, status_code=503)

    return route
