"""The service protocol: every background loop starts, says how it is doing, and stops within its bound."""

from __future__ import annotations

import asyncio

import pytest

from webhook.services import GuardedTask, Loop, Service, ServiceGroup, State


async def wait_for(predicate, *, steps: int = 500) -> None:
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_failing_step_shows_in_health_and_clears_when_it_succeeds() -> None:
    outcomes = [RuntimeError("postgres said no"), RuntimeError("again"), None]

    async def step() -> None:
        outcome = outcomes.pop(0) if outcomes else None
        if outcome is not None:
            raise outcome

    task = GuardedTask(name="upkeep", step=step, interval=3600, first_delay=0, retry_interval=0.01)
    assert isinstance(task, Service)
    assert task.health().state is State.STOPPED
    task.start()
    await wait_for(lambda: task.steps >= 1)
    failing = task.health()
    assert failing.state is State.FAILING and failing.last_error == "RuntimeError: postgres said no"
    assert not failing.ok
    # The retry comes after retry_interval, not after the hour-long interval.
    await wait_for(lambda: task.steps >= 3)
    healthy = task.health()
    assert (healthy.state, healthy.failures, healthy.last_error) == (State.RUNNING, 0, None)
    assert await task.stop(timeout=2) is True
    assert task.health().state is State.STOPPED


async def test_on_stopped_runs_once_the_loop_has_ended() -> None:
    events: list[str] = []

    async def step() -> None:
        events.append("step")

    async def closed() -> None:
        events.append("closed")

    task = GuardedTask(name="rotation", step=step, interval=3600, first_delay=0, on_stopped=closed)
    task.start()
    await wait_for(lambda: task.steps == 1)
    assert await task.stop(timeout=2) is True
    assert events == ["step", "closed"]


async def test_a_group_stops_every_service_together_and_within_the_bound() -> None:
    stopped: list[str] = []
    forever = asyncio.Event()

    async def polite() -> None:
        stopped.append("polite")

    async def stuck() -> None:
        await forever.wait()  # a component whose stop never returns

    group = ServiceGroup([Loop(name="polite", start=lambda: None, stop=polite),
                          Loop(name="stuck", start=lambda: None, stop=stuck)])
    with pytest.raises(ValueError, match="already registered"):
        group.add(Loop(name="stuck", start=lambda: None, stop=stuck))
    group.start()
    assert {name: h.state for name, h in group.health().items()} == {"polite": State.RUNNING,
                                                                       "stuck": State.RUNNING}
    assert await group.stop(timeout=0.2) is False  # one had to be left behind, and the call still returned
    assert stopped == ["polite"]
    assert {name: h.state for name, h in group.health().items()} == {"polite": State.STOPPED,
                                                                       "stuck": State.ABANDONED}


async def test_a_loop_whose_task_ended_by_itself_says_so() -> None:
    task: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal task
        task = asyncio.create_task(asyncio.sleep(0))

    async def stop() -> None:
        pass

    loop = Loop(name="informer", start=start, stop=stop, running=lambda: task is not None and not task.done())
    loop.start()
    await wait_for(lambda: task is not None and task.done())
    assert loop.health().state is State.ENDED
    assert await loop.stop() is True
