"""Beyond ``max_in_flight`` reviews at once (or ``max_in_flight_per_actor`` of one actor), /validate
answers at once instead of queueing, and never admits an automation change unchecked: 429 with
Retry-After. (People and observed actors, admitted and recorded, need the real stores:
tests/stress/test_overload_storm.py.)"""

from __future__ import annotations

import asyncio
import datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests import reviews
from webhook import metrics
from webhook.admission import responses
from webhook.policy.actors import ActorRules
from webhook.server import validate
from webhook.server.overload import Overload, Slots
from webhook.settings import Settings


class HeldGate:
    """A gate whose decisions wait until released: holds requests in flight."""

    rules = ActorRules()
    excluded_namespaces = frozenset({"kube-system"})
    on_decision = None

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    @staticmethod
    def clock() -> datetime.datetime:
        return datetime.datetime.now(datetime.timezone.utc)

    async def review(self, request):
        self.entered += 1
        await self.release.wait()
        return type("Result", (), {"response": responses.allowed(request.uid)})()


def app_with(gate: HeldGate, **settings) -> Starlette:
    app = Starlette(routes=[Route("/validate", validate.validate, methods=["POST"])])
    app.state.settings = config = Settings(**settings)
    app.state.gate = gate
    app.state.slots = Slots(limit=config.max_in_flight, per_actor=config.max_in_flight_per_actor)
    return app


async def post(client: httpx.AsyncClient, body: dict) -> httpx.Response:
    res = await client.post("/validate", json=body)
    assert res.status_code == 200
    return res


def scale(uid: str, *, user: str = reviews.AGENT, name: str = "cart") -> dict:
    return reviews.scale(before=1, after=2, uid=uid, user=user, name=name)


def refused(res: httpx.Response, limit: Overload) -> bool:
    answer = res.json()["response"]
    status = answer.get("status", {})
    return (answer["allowed"] is False and status.get("code") == 429
            and status["details"]["retryAfterSeconds"] >= 1 and res.headers["retry-after"] == "1"
            and "overloaded" in status["message"] and limit.value in status["message"])


def overloaded(actor_class: str, reason: Overload) -> float:
    return metrics.OVERLOADED_REQUESTS.labels(actor_class=actor_class, reason=reason.value)._value.get()


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_automation_beyond_the_limit_is_refused_429_at_once(fail_closed):
    gate = HeldGate()
    app = app_with(gate, max_in_flight=2, max_in_flight_per_actor=0, fail_closed=fail_closed)
    before = overloaded("automation", Overload.REPLICA)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as client:
        held = [asyncio.create_task(post(client, scale(f"held-{i}", name=f"w{i}"))) for i in range(2)]
        while gate.entered < 2:
            await asyncio.sleep(0.001)
        third = await post(client, scale("third", name="other"))   # answered while the two are still held
        assert third.json()["response"]["uid"] == "third"
        assert refused(third, Overload.REPLICA), third.json()
        assert gate.entered == 2                                    # the gate never saw it
        gate.release.set()
        assert [r.json()["response"]["allowed"] for r in await asyncio.gather(*held)] == [True, True]
        assert app.state.slots.in_flight == 0
        assert (await post(client, scale("after"))).json()["response"]["allowed"] is True
        assert gate.entered == 3
    assert overloaded("automation", Overload.REPLICA) == before + 1


async def test_one_actor_cannot_take_every_slot():
    gate = HeldGate()
    app = app_with(gate, max_in_flight=10, max_in_flight_per_actor=3)
    other = "system:serviceaccount:ops:other-agent"
    before = overloaded("automation", Overload.ACTOR)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as client:
        held = [asyncio.create_task(post(client, scale(f"a-{i}", name=f"w{i}"))) for i in range(3)]
        while gate.entered < 3:
            await asyncio.sleep(0.001)
        fourth = await post(client, scale("a-4", name="w4"))
        assert refused(fourth, Overload.ACTOR), fourth.json()
        others = asyncio.create_task(post(client, scale("b-1", user=other, name="w9")))  # another agent gets in
        while gate.entered < 4:
            await asyncio.sleep(0.001)
        assert app.state.slots.of(reviews.AGENT) == 3 and app.state.slots.of(other) == 1
        gate.release.set()
        assert all(r.json()["response"]["allowed"] for r in await asyncio.gather(*held, others))
    assert app.state.slots.in_flight == 0 and app.state.slots.of(reviews.AGENT) == 0
    assert overloaded("automation", Overload.ACTOR) == before + 1


async def test_requests_the_gate_does_not_judge_are_allowed_beyond_the_limit():
    gate = HeldGate()
    app = app_with(gate, max_in_flight=1)
    body = reviews.scale(before=2, after=2, uid="no-change")   # replicas unchanged: not an action
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as client:
        held = asyncio.create_task(post(client, scale("held")))
        while gate.entered < 1:
            await asyncio.sleep(0.001)
        answer = (await post(client, body)).json()["response"]
        assert answer["allowed"] is True and "warnings" not in answer
        gate.release.set()
        await held


async def test_zero_means_no_limit():
    gate = HeldGate()
    app = app_with(gate, max_in_flight=0, max_in_flight_per_actor=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as client:
        held = [asyncio.create_task(post(client, scale(f"held-{i}"))) for i in range(20)]
        while gate.entered < 20:
            await asyncio.sleep(0.001)
        gate.release.set()
        assert all(r.json()["response"]["allowed"] and "warnings" not in r.json()["response"]
                   for r in await asyncio.gather(*held))


def test_the_limits_are_settings_flags_and_environment_variables(monkeypatch):
    from typer.testing import CliRunner

    from webhook.cli.main import app

    monkeypatch.setenv("SAFETY_GATE_MAX_IN_FLIGHT_PER_ACTOR", "3")
    assert Settings().max_in_flight_per_actor == 3
    for flag in ("--max-in-flight", "--max-in-flight-per-actor"):
        result = CliRunner().invoke(app, ["serve", flag, "-1"])
        assert result.exit_code == 2 and flag in result.output, result.output


class BrokenGate(HeldGate):
    async def review(self, request):
        raise RuntimeError("boom")


async def test_an_unexpected_failure_with_fail_closed_never_refuses_an_observed_actor():
    app = app_with(BrokenGate(), fail_closed=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as client:
        agent = (await post(client, scale("agent"))).json()["response"]
        hpa = (await post(client, scale("hpa", user=reviews.HPA))).json()["response"]
    assert agent["allowed"] is False and agent["status"]["code"] == 503
    assert hpa["allowed"] is True and "unchecked" in hpa["warnings"][0]
