"""Background services: one protocol (start, stop, health) for every loop a process runs, and
the guarded task most of them are.

Every background loop of a ``serve`` process (store upkeep, retention, the effectiveness refresh,
certificate rotation, the alert writer and sweeper, the policy and approval watchers, Kubernaut's
assessments, the summariser) is a :class:`Service`, started and stopped by one
:class:`ServiceGroup`: the stop of all of them is bounded, and ``health()`` says of each whether
it runs and whether its last step failed.

A guarded task is a loop with a bounded, cancellation-safe ``stop``:

``task.cancel()`` followed by an unbounded ``await task`` is how a SIGTERM hangs for good. On
Python 3.11, ``asyncio.wait_for`` returns the inner result instead of raising when the outer
task is cancelled in the same loop iteration as the inner one completes (the "cancellation races
a completion" case); the cancellation is swallowed, ``Task.cancelling()`` stays above zero, and a
``while True`` loop around it sleeps on as if nothing had happened. Every upkeep step awaits such
a ``wait_for`` (store pings), so this is not theoretical.

:class:`GuardedTask` does not rely on the cancellation arriving: ``stop()`` sets a stop event the
loop checks between steps, also cancels (to interrupt a long step), notices a swallowed
cancellation through ``cancelling()``, and waits at most ``timeout`` seconds before giving up on
the task and saying so in the log. A failing step is logged and retried on the next tick; it
never ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

logger = logging.getLogger(__name__)

#: Seconds ``stop()`` waits for a loop by default: well inside the pod's grace period even when
#: several loops stop one after the other.
DEFAULT_STOP_TIMEOUT = 5.0


class State(str, enum.Enum):
    """What ``health()`` says of a service."""

    STOPPED = "stopped"      # not started, or stopped
    RUNNING = "running"      # running, and its last step (if any) succeeded
    FAILING = "failing"      # running, but its last step failed (it retries on its own)
    ABANDONED = "abandoned"  # did not stop within its bound and was left behind
    ENDED = "ended"          # its task ended by itself (a bug: loops run until stopped)


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    name: str
    state: State
    steps: int = 0
    failures: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in (State.RUNNING, State.STOPPED)


@runtime_checkable
class Service(Protocol):
    """A background loop: ``start`` never waits (for a store, the API server...), ``stop`` returns
    within ``timeout`` (True if the loop ended, False if it had to be abandoned)."""

    name: str

    def start(self) -> None: ...

    async def stop(self, *, timeout: float | None = None) -> bool: ...

    def health(self) -> Health: ...


class GuardedTask:
    """Run ``step`` every ``interval`` seconds (the first after ``first_delay``) until stopped."""

    def __init__(self, *, name: str, step: Callable[[], Awaitable[object]], interval: float,
                 first_delay: float | None = None, retry_interval: float | None = None,
                 stop_timeout: float = DEFAULT_STOP_TIMEOUT,
                 on_stopped: Callable[[], Awaitable[object]] | None = None) -> None:
        """``retry_interval``: the pause after a failed step (default ``interval``); ``on_stopped``:
        awaited once the loop has ended (closing what the step used), within the same bound."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.name = name
        self.step = step
        self.interval = interval
        self.first_delay = interval if first_delay is None else first_delay
        self.retry_interval = interval if retry_interval is None else retry_interval
        self.stop_timeout = stop_timeout
        self.on_stopped = on_stopped
        self.steps = 0  # completed steps, failed or not: lets tests and logs see progress
        self.failures = 0  # failed steps in a row
        self.last_error: str | None = None
        self._abandoned = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def health(self) -> Health:
        if self._abandoned:
            state = State.ABANDONED
        elif self._task is None:
            state = State.STOPPED
        elif self._task.done():
            state = State.ENDED
        else:
            state = State.FAILING if self.failures else State.RUNNING
        return Health(name=self.name, state=state, steps=self.steps, failures=self.failures,
                      last_error=self.last_error)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop; a no-op while it runs."""
        if self.running:
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, *, timeout: float | None = None) -> bool:
        """Stop the loop within ``timeout`` seconds; True if it ended, False if it had to be abandoned.

        Never raises for the loop's own failures and never waits longer than ``timeout``: the
        caller is a shutdown with a deadline.
        """
        task = self._task
        if task is None:
            return True
        bound = self.stop_timeout if timeout is None else timeout
        self._stopping.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=bound)
        if not done:
            logger.error("background task %s did not stop within %.1fs; abandoning it", self.name, bound)
            self._abandoned = True
            return False
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s ended with an error", self.name, exc_info=task.exception())
        if self.on_stopped is not None:
            return await bounded(self.on_stopped(), what=f"closing {self.name}", timeout=bound)
        return True

    async def _run(self) -> None:
        delay = self.first_delay
        while not self._stopping.is_set():
            if await self._pause(delay):
                return
            delay = self.interval
            try:
                await self.step()
                self.failures, self.last_error = 0, None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failing step is retried next tick, never ends the loop
                delay = self.retry_interval
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                logger.exception("background task %s failed; next try in %ss", self.name, delay)
            self.steps += 1
            if _cancellation_swallowed():
                raise asyncio.CancelledError

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` seconds or until stopped; True when stopping."""
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
        return self._stopping.is_set()


def _cancellation_swallowed() -> bool:
    """Whether this task was asked to cancel and something on the way (``wait_for``) ate it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def bounded(step: Awaitable[object], *, what: str, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """Await ``step`` for at most ``timeout`` seconds; False (logged) when it had to be left behind."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        logger.error("%s took over %.0fs; going on without it", what, timeout)
        return False
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", what, exc_info=task.exception())
    return True


class Loop:
    """A component that runs its own loop (an informer, a queue writer) as a :class:`Service`:
    its ``stop`` bounded, its health read from ``running``."""

    def __init__(self, *, name: str, start: Callable[[], object], stop: Callable[[], Awaitable[object]],
                 running: Callable[[], bool] | None = None) -> None:
        self.name = name
        self._start = start
        self._stop = stop
        self._running = running
        self._started = False
        self._abandoned = False

    def start(self) -> None:
        if not self._started:
            self._start()
            self._started, self._abandoned = True, False

    async def stop(self, *, timeout: float | None = None) -> bool:
        if not self._started:
            return True
        self._started = False
        ended = await bounded(self._stop(), what=f"stopping {self.name}",
                              timeout=DEFAULT_STOP_TIMEOUT if timeout is None else timeout)
        self._abandoned = not ended
        return ended

    def health(self) -> Health:
        if self._abandoned:
            return Health(name=self.name, state=State.ABANDONED)
        if not self._started:
            return Health(name=self.name, state=State.STOPPED)
        if self._running is not None and not self._running():
            return Health(name=self.name, state=State.ENDED)
        return Health(name=self.name, state=State.RUNNING)


class ServiceGroup:
    """The services of one process: started in order, stopped together within one bound."""

    def __init__(self, services: Sequence[Service] = ()) -> None:
        self.services: list[Service] = list(services)

    def add(self, service: Service) -> Service:
        if any(s.name == service.name for s in self.services):
            raise ValueError(f"a service named {service.name!r} is already registered")
        self.services.append(service)
        return service

    def start(self) -> None:
        for service in self.services:
            service.start()

    async def stop(self, *, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
        """Stop every service at once; True when all ended within ``timeout``."""
        results = await asyncio.gather(*(s.stop(timeout=timeout) for s in self.services))
        return all(results)

    def health(self) -> dict[str, Health]:
        return {service.name: service.health() for service in self.services}
