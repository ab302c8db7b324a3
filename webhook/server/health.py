"""``/healthz`` (the process answers) and ``/readyz`` (it can decide: PostgreSQL is reachable)."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhook.server import metrics


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    checks = await runtime.check_stores()
    for store, ok in checks.items():
        metrics.DEGRADED.labels(store=store).set(0 if ok else 1)
    ready = checks.get("postgres", False)
    body = {"ready": ready, "stores": {name: "up" if ok else "down" for name, ok in checks.items()}}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def probe(coroutine, *, timeout: float = 1.0) -> bool:  # type: ignore[no-untyped-def]
    try:
        await asyncio.wait_for(coroutine, timeout)
        return True
    except Exception:
        return False
