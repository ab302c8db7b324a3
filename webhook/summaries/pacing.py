"""A token bucket: at most ``burst`` writes at once, ``rate`` per second sustained.

Why a bucket and not a fixed delay: after a quiet hour one change should show at once, while
a storm of thousands of actions must still reach the API server as a trickle. The bucket
allows exactly that: any window of ``w`` seconds holds at most ``burst + rate * w`` writes.
The clock and the sleep are parameters, so the rule is tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

_EPSILON = 1e-9  # refilling exactly the missing fraction can land a hair below 1.0 in floating point


class TokenBucket:
    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self) -> float:
        """Seconds until a token is available (0 if one is)."""
        self._refill()
        return 0.0 if self._tokens >= 1 - _EPSILON else (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Take one token, sleeping until there is one. Waiters are served in order."""
        async with self._lock:
            while (delay := self.wait_time()) > 0:
                await self._sleep(delay)
            self._tokens = max(0.0, self._tokens - 1)
