"""Durations as policies write them: ``90s``, ``30m``, ``2h``, ``7d``."""

import datetime
import re

_DURATION = re.compile(r"^\s*([0-9]+)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> datetime.timedelta:
    match = _DURATION.match(str(text))
    if not match:
        raise DurationError(f"invalid duration {text!r}: expected a number followed by s, m, h or d (e.g. 30m)")
    amount, unit = match.groups()
    try:
        return datetime.timedelta(seconds=int(amount) * _UNITS[unit])
    except OverflowError:
        raise DurationError(f"invalid duration {text!r}: far too long") from None


def format_duration(delta: datetime.timedelta) -> str:
    """The shortest exact form: 5400s → ``90m``, 7200s → ``2h``."""
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
