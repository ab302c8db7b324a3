"""Waiting for a condition with a deadline: the one way tests wait for stores and gate processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 60, what: str = "condition") -> T:
    """The predicate's first truthy value, polled every 0.2 s; an AssertionError naming ``what`` past
    the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
