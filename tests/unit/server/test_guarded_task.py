"""Background loops stop within their bound, also when a cancellation races a step's completion.

The race is built deterministically: the step's probe, run by ``asyncio.wait_for`` exactly as the
store upkeep pings PostgreSQL and Redis, asks the loop to stop and then completes in the same loop
iteration. Python 3.11's ``wait_for`` then returns the probe's result and swallows the
cancellation; a ``while True`` loop stopped by ``cancel()`` + ``await`` never ends.
"""

from __future__ import annotations

import asyncio

from webhook.server.tasks import GuardedTask


async def _race_stop_with_completion(guarded: GuardedTask, stops: list[asyncio.Task[bool]]) -> bool:
    """A probe that finishes just as ``stop()`` cancels the task awaiting it (see the module docstring)."""
    # stop() runs in the next callback, after this probe returned but before wait_for has seen it:
    # it sets the stop event and cancels the loop task while wait_for's inner task is already done.
    stops.append(asyncio.ensure_future(guarded.stop(timeout=10)))
    return True


async def test_the_race_swallows_a_cancellation_in_wait_for() -> None:
    """The premise: the plain cancel-and-await shape loses the cancellation (so the guard is needed)."""
    loop_task: asyncio.Task[None] | None = None
    answered = []

    async def probe() -> bool:
        assert loop_task is not None
        asyncio.get_running_loop().call_soon(loop_task.cancel)  # lands after this probe returned
        return True

    async def one_step() -> None:
        answered.append(await asyncio.wait_for(probe(), 2))

    loop_task = asyncio.create_task(one_step())
    await asyncio.wait({loop_task}, timeout=5)
    assert loop_task.done() and not loop_task.cancelled(), "no race on this Python: the cancellation arrived"
    assert answered == [True]
    assert loop_task.cancelling() == 1  # asked to cancel, never did: "stays cancelling"


async def test_stop_ends_the_loop_when_the_cancellation_is_swallowed() -> None:
    stops: list[asyncio.Task[bool]] = []
    pings = []

    async def upkeep() -> None:
        pings.append(await asyncio.wait_for(_race_stop_with_completion(guarded, stops), 2))

    guarded = GuardedTask(name="store-upkeep", step=upkeep, interval=0.01, first_delay=0)
    guarded.start()
    done, _ = await asyncio.wait({asyncio.ensure_future(_first_stop(stops))}, timeout=10)
    assert done, "the race was never set up"
    stopped = await asyncio.wait_for(stops[0], 15)
    assert stopped is True
    assert not guarded.running
    assert pings == [True], "the loop went on stepping after stop()"


async def _first_stop(stops: list[asyncio.Task[bool]]) -> None:
    while not stops:
        await asyncio.sleep(0.01)


async def test_stop_gives_up_on_a_step_that_ignores_cancellation() -> None:
    """A step that eats every cancellation cannot hold shutdown beyond the bound; stop() says so."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    guarded = GuardedTask(name="stubborn", step=stubborn, interval=1, first_delay=0)
    guarded.start()
    await asyncio.sleep(0.05)
    assert await guarded.stop(timeout=0.2) is False
    assert guarded.running
    release.set()
    guarded._task.cancel()  # noqa: SLF001 - let the abandoned task end so the loop closes cleanly
    await asyncio.wait({guarded._task}, timeout=5)  # noqa: SLF001
    assert not guarded.running


async def test_a_failing_step_is_retried_and_stop_is_prompt_in_a_long_pause() -> None:
    calls = []

    async def failing() -> None:
        calls.append(1)
        raise RuntimeError("store said no")

    guarded = GuardedTask(name="failing", step=failing, interval=0.01, first_delay=0)
    guarded.start()
    while len(calls) < 3:
        await asyncio.sleep(0.01)
    assert guarded.running
    assert await guarded.stop(timeout=5) is True

    idle = GuardedTask(name="idle", step=failing, interval=3600, first_delay=3600)
    idle.start()
    await asyncio.sleep(0)
    assert await idle.stop(timeout=5) is True
    assert idle.steps == 0


async def test_stop_before_start_and_twice_is_harmless() -> None:
    async def nothing() -> None:
        return None

    guarded = GuardedTask(name="never", step=nothing, interval=1)
    assert await guarded.stop() is True
    guarded.start()
    assert await guarded.stop() is True
    assert await guarded.stop() is True
