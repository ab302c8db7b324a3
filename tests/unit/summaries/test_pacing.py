"""The token bucket: ``burst`` at once, then ``rate`` per second — on a fake clock, without waiting."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from webhook.summaries.pacing import TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def take(bucket: TokenBucket, times: FakeTime, n: int) -> list[float]:
    """When each of ``n`` consecutive acquires got its token."""
    async def run() -> list[float]:
        stamps = []
        for _ in range(n):
            await bucket.acquire()
            stamps.append(times.now)
        return stamps

    return asyncio.run(run())


def test_a_burst_goes_at_once_then_the_rate_holds():
    times = FakeTime()
    bucket = TokenBucket(rate=5, burst=10, clock=times.clock, sleep=times.sleep)
    stamps = take(bucket, times, 30)
    assert stamps[:10] == [1000.0] * 10
    gaps = [b - a for a, b in itertools.pairwise(stamps[10:])]
    assert gaps == pytest.approx([0.2] * 19)


@pytest.mark.parametrize("rate,burst", [(5, 10), (1, 1), (50, 3), (0.5, 2)])
def test_no_window_holds_more_than_burst_plus_rate_times_its_length(rate, burst):
    times = FakeTime()
    bucket = TokenBucket(rate=rate, burst=burst, clock=times.clock, sleep=times.sleep)
    stamps = take(bucket, times, 200)
    for i, start in enumerate(stamps):
        for j in range(i, len(stamps)):
            window = stamps[j] - start
            assert j - i + 1 <= burst + rate * window + 1e-6


def test_tokens_come_back_while_idle_but_never_beyond_the_burst():
    times = FakeTime()
    bucket = TokenBucket(rate=2, burst=4, clock=times.clock, sleep=times.sleep)
    take(bucket, times, 4)
    times.now += 3600  # an hour of quiet refills 7200 tokens, capped at 4
    start = times.now
    stamps = take(bucket, times, 6)
    assert stamps[:4] == [start] * 4
    assert stamps[4] == pytest.approx(start + 0.5)


@pytest.mark.parametrize("rate,burst", [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_limits_are_refused(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)
