"""Beyond ``max_in_flight`` reviews at once, /validate answers at once instead of queueing:
unchecked, allowed with a warning (or refused with failClosed), and counted."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests import reviews
from webhook import metrics
from webhook.admission import responses
from webhook.server import validate
from webhook.settings import Settings


class HeldGate:
    """A gate whose decisions wait until released: holds requests in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def review(self, request):
        self.entered += 1
        await self.release.wait()
        return type("Result", (), {"response": responses.allowed(request.uid)})()


def app_with(gate: HeldGate, **settings) -> Starlette:
    app = Starlette(routes=[Route("/validate", validate.validate, methods=["POST"])])
    app.state.settings = Settings(**settings)
    app.state.gate = gate
    app.state.in_flight = 0
    return app


async def post(client: httpx.AsyncClient, uid: str) -> dict:
    res = await client.post("/validate", json=reviews.scale(before=1, after=2, uid=uid))
    assert res.status_code == 200
    return res.json()["response"]


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_requests_beyond_the_limit_are_answered_at_once(fail_closed):
    gate = HeldGate()
    app = app_with(gate, max_in_flight=2, fail_closed=fail_closed)
    shed_before = metrics.SHED_REQUESTS._value.get()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as client:
        held = [asyncio.create_task(post(client, f"held-{i}")) for i in range(2)]
        while gate.entered < 2:
            await asyncio.sleep(0.001)
        shed = await post(client, "third")           # answered while the two are still held
        assert shed["uid"] == "third"
        if fail_closed:
            assert shed["allowed"] is False and shed["status"]["code"] == 503
        else:
            assert shed["allowed"] is True and "overloaded" in shed["warnings"][0]
        assert gate.entered == 2                      # the gate never saw it
        gate.release.set()
        assert [r["allowed"] for r in await asyncio.gather(*held)] == [True, True]
        assert app.state.in_flight == 0
        assert (await post(client, "after"))["allowed"] is True and gate.entered == 3
    assert metrics.SHED_REQUESTS._value.get() == shed_before + 1


async def test_zero_means_no_limit():
    gate = HeldGate()
    app = app_with(gate, max_in_flight=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as client:
        held = [asyncio.create_task(post(client, f"held-{i}")) for i in range(20)]
        while gate.entered < 20:
            await asyncio.sleep(0.001)
        gate.release.set()
        assert all(r["allowed"] and "warnings" not in r for r in await asyncio.gather(*held))
