"""A job every ``interval`` inside the server: retention (leader-locked in the job itself) and the
effectiveness aggregates. A failing job is logged and tried again next tick; it never stops the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Periodic:
    def __init__(self, *, name: str, interval: float, job: Callable[[], Awaitable[object]],
                 first_delay: float | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.name = name
        self.interval = interval
        self.job = job
        # The first run comes soon after start (a fresh replica catches up), not a whole interval later.
        self.first_delay = min(interval, 60.0) if first_delay is None else first_delay
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"periodic-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        delay = self.first_delay
        while True:
            await asyncio.sleep(delay)
            delay = self.interval
            try:
                await self.job()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("periodic job %s failed; next try in %ss", self.name, self.interval)
