"""Background loops that always stop: a guarded task with a bounded, cancellation-safe ``stop``.

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
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

#: Seconds ``stop()`` waits for a loop by default: well inside the pod's grace period even when
#: several loops stop one after the other.
DEFAULT_STOP_TIMEOUT = 5.0


class GuardedTask:
    """Run ``step`` every ``interval`` seconds (the first after ``first_delay``) until stopped."""

    def __init__(self, *, name: str, step: Callable[[], Awaitable[object]], interval: float,
                 first_delay: float | None = None, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.name = name
        self.step = step
        self.interval = interval
        self.first_delay = interval if first_delay is None else first_delay
        self.stop_timeout = stop_timeout
        self.steps = 0  # completed steps, failed or not: lets tests and logs see progress
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
            return False
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s ended with an error", self.name, exc_info=task.exception())
        return True

    async def _run(self) -> None:
        delay = self.first_delay
        while not self._stopping.is_set():
            if await self._pause(delay):
                return
            delay = self.interval
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failing step is retried next tick, never ends the loop
                logger.exception("background task %s failed; next try in %ss", self.name, self.interval)
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
