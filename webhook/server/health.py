"""``/healthz`` (the process answers), ``/readyz`` (it can decide from history), ``/metrics``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the gate can decide from history: PostgreSQL, or at least the Redis cache.

    With both down the gate still answers (fail-open or fail-closed), but it is not deciding,
    so it reports not ready and the body says which store is missing.
    """
    status = request.app.state.runtime.store_status()
    ready = any(status.values())
    body = {
        "ready": ready,
        "degraded": ready and not all(status.values()),
        "stores": {name: "up" if up else "down" for name, up in status.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
