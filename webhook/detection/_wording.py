"""How detectors put numbers and spans into words, so every summary reads the same way.

Summaries end up in admission messages a person reads on the command line
(``2 direction reversals in 41m (3→5→3→5)``), so they are short, exact and uniform.
"""

from __future__ import annotations

import datetime


def span(start: datetime.datetime, end: datetime.datetime) -> str:
    """Whole minutes from ``start`` to ``end``: ``41m``, ``2h``, ``2h10m``.

    Rounded down, and never below ``1m``: "in 0m" reads like a bug, and a pattern that formed
    within one minute is still fairly described as "in 1m". All detectors use this one rule.
    """
    minutes = max(1, int((end - start).total_seconds() // 60))
    hours, rest = divmod(minutes, 60)
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
