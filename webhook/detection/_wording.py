"""How detectors put numbers and spans into words, so every summary reads the same way.

Summaries end up in admission messages a person reads on the command line
(``2 direction reversals in 41m (3→5→3→5)``), so they are short, exact and uniform.
"""

from __future__ import annotations

import datetime


def span(start: datetime.datetime, end: datetime.datetime) -> str:
    """From ``start`` to ``end``, rounded down: ``41s``, ``41m``, ``2h``, ``2h10m``.

    Under a minute it is said in seconds: three changes in 40 seconds are a runaway agent, and
    calling that "1m" hid it. It never reads "0s" — two changes in the same second are said as
    "1s". From a minute up, whole minutes. All detectors use this one rule.
    """
    seconds = int((end - start).total_seconds())
    if seconds < 60:
        return f"{max(1, seconds)}s"
    hours, rest = divmod(seconds // 60, 60)
    if not hours:
        return f"{rest}m"
    if not rest:
        return f"{hours}h"
    return f"{hours}h{rest}m"


def plural(count: int, word: str) -> str:
    """``1 direction reversal``, ``2 direction reversals``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def number(value: float | None) -> str:
    """A value without noise: ``3``, ``0.25``, ``-`` for unknown."""
    if value is None:
        return "-"
    return f"{value:.2f}".rstrip("0").rstrip(".")
