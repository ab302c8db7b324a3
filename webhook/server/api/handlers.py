"""Errors as JSON, through starlette's exception handlers: the API promises JSON errors and never
a 500, so each failure a handler (or the router) raises has its answer here.

* ``ApiError`` (a handler's 400, 404, 422...): its status and message;
* the router's ``HTTPException`` (no such route, a method the route does not take): 404 naming
  the OpenAPI document, 405 with ``Allow``;
* a store that cannot answer (``StoreError``, or a driver error that escaped the store): 503 with
  ``Retry-After``;
* anything else is a bug: 503 without a stack trace on the wire (it is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
import redis.exceptions
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhook.server.api.errors import ApiError
from webhook.store.errors import StoreError

logger = logging.getLogger(__name__)

STORE_ERRORS = (StoreError, asyncpg.PostgresError, asyncpg.InterfaceError, redis.exceptions.RedisError, OSError,
                TimeoutError)
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
Handler = Callable[[Request, Exception], Awaitable[Response]]


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return JSONResponse({"error": f"no API route {request.url.path!r}; see GET /api/v1/openapi.json"},
                            status_code=404)
    if exc.status_code == 405:
        given = (exc.headers or {}).get("Allow", "")
        allowed = sorted((m.strip() for m in given.split(",") if m.strip()), key=_method_rank)
        allow = ", ".join(allowed)
        return JSONResponse({"error": f"method {request.method} not allowed here; allowed: {allow}"},
                            status_code=405, headers={"Allow": allow})
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("api %s %s: store unavailable: %s", request.method, request.url.path, exc)
    return JSONResponse({"error": f"history store unavailable ({type(exc).__name__}); try again"},
                        status_code=503, headers={"Retry-After": "5"})


async def bug(request: Request, exc: Exception) -> Response:
    logger.error("api %s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": f"the request could not be handled ({type(exc).__name__}); see the gate's log"},
                        status_code=503)


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def exception_handlers() -> Mapping[type[Exception], Handler]:
    handlers: dict[type[Exception], Handler] = {ApiError: api_error, HTTPException: http_error}
    handlers.update(dict.fromkeys(STORE_ERRORS, store_unavailable))
    handlers[Exception] = bug
    return handlers
