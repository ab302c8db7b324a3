"""``/healthz`` (the process answers), ``/readyz`` (it can decide from history), ``/metrics``."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhook import metrics


async def healthz(request: Request) -> JSONResponse:
    """Always 200 while the process answers (the liveness probe); ``services`` says how each
    background loop is doing, for people: a failing loop retries on its own, a restart would not help."""
    runtime = getattr(request.app.state, "runtime", None)
    services = runtime.service_health() if runtime is not None else {}
    body: dict[str, object] = {"status": "ok", "services": {
        name: {"state": h.state.value, "failures": h.failures, **({"last_error": h.last_error} if h.last_error else {})}
        for name, h in services.items()}}
    worker = getattr(runtime, "worker", None)
    if worker is not None and worker.count > 1:  # which of the pod's workers answered (each is a server)
        body["worker"] = {"index": worker.index, "pid": os.getpid()}
    return JSONResponse(body)


async def readyz(request: Request) -> JSONResponse:
    """Ready when the gate can decide: history from PostgreSQL (or at least the Redis cache), and
    with a cluster, its OscillationPatterns listed once.

    With both stores down the gate still answers (fail-open, or closed for automation), but it is
    not deciding, so it reports not ready. ``degraded`` is true whenever any store is missing, and
    ``history`` says whether decisions see each target's full window: after Redis lost its data
    while PostgreSQL is down they do not (``incomplete``). That replica stays ready on purpose: every
    replica shares the stores, and with none ready the API server would skip the webhook entirely
    (``failurePolicy: Ignore``), recording nothing and enforcing no ``failClosed``.
    """
    runtime = request.app.state.runtime
    status = runtime.store_status()
    can_decide = any(status.values())
    history = getattr(runtime, "history", None)
    cold = bool(history is not None and history.cache_cold and not status.get("postgres", False))
    # With a cluster, the OscillationPatterns there are part of the policy: deciding before the first
    # list would apply the file and defaults alone. The API server is the one calling, so waiting
    # for it to answer the list costs nothing in practice.
    policies_synced = runtime.policies_synced()
    ready = can_decide and policies_synced
    body = {
        "ready": ready,
        "degraded": not all(status.values()) or cold,
        "stores": {name: "up" if up else "down" for name, up in status.items()},
        "history": "unavailable" if not can_decide else "incomplete" if cold else "complete",
        "policies": "synced" if policies_synced else "pending",
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    """This process's metrics, or with ``--workers`` the pod's totals (any worker answers the same)."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
