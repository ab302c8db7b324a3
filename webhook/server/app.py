"""The starlette application: routes and the lifespan that starts and stops the runtime."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.routing import Route

from webhook.server import api, health, validate
from webhook.server.overload import Slots
from webhook.server.runtime import Runtime
from webhook.settings import Settings

GC_YOUNG_THRESHOLD = 50_000


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Starlette:
    runtime = runtime or Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        app.state.gate = runtime.gate
        # Everything allocated so far (modules, schemas, API models) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it and
        # stops requests for tens of milliseconds.
        gc.freeze()
        # A review allocates thousands of short-lived objects (its JSON, the models, the history
        # read from Redis): with the default threshold (700) the young generation was collected
        # several times per request, 6% of the CPU at 250 req/s (py-spy --native, issue 15).
        # Nearly all of them die with their request, before a collection at this threshold sees them.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
        try:
            yield
        finally:
            await runtime.stop()

    state = State()  # shared with the API's own application (its handlers read the gate from it)
    routes = [
        Route("/validate", validate.validate, methods=["POST"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", health.metrics_endpoint, methods=["GET"]),
        api.mount(settings, state=state),  # /api/v1/*: history, effectiveness, safety-check, openapi.json
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state = state
    app.state.settings = settings
    # Reviews being decided, in total and per actor (validate.py answers at once beyond the limits).
    app.state.slots = Slots(limit=settings.overload.max_in_flight, per_actor=settings.overload.max_in_flight_per_actor)
    app.state.runtime = runtime
    return app


def create_metrics_app() -> Starlette:
    """Plain-HTTP ``/metrics`` on ``--metrics-port`` for Prometheus scrapers without TLS."""
    return Starlette(routes=[Route("/metrics", health.metrics_endpoint, methods=["GET"])])
