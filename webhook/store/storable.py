"""A decision bundle in a form PostgreSQL accepts, for when it refused the original.

Admission is where odd input should be refused or clamped; this is the store's own guard, so an
admitted action that slipped through still counts as history instead of vanishing. It is only
used after a refusal, never on the healthy path.
"""

from __future__ import annotations

import json
import math
from typing import Any

from webhook.store.effects import Effects

INT4 = (-(2**31), 2**31 - 1)
REAL_MAX = 3.4e38  # the largest magnitude a PostgreSQL ``real`` holds
_INT4_FIELDS = ("replicas_before", "replicas_after")
_REAL_FIELDS = ("confidence", "effectiveness")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_clean(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def _clamp_int4(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, INT4[0]), INT4[1])
    return value


def _real_or_none(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > REAL_MAX:
        return None
    return value


def storable(effects: Effects) -> Effects:
    """The same bundle with NUL bytes and unencodable characters dropped, non-finite numbers
    nulled, replica counts clamped to ``integer`` and scores outside ``real`` nulled."""
    data = _clean(effects.to_json())
    event = data["event"]
    for field in _INT4_FIELDS:
        event[field] = _clamp_int4(event.get(field))
    for field in _REAL_FIELDS:
        event[field] = _real_or_none(event.get(field))
    data["latency_ms"] = _real_or_none(data.get("latency_ms")) or 0.0
    return Effects.from_json(data)


def escaped(effects: Effects) -> str:
    """The original bundle as text any ``text`` column holds: JSON with non-ASCII escaped (a NUL
    becomes the six characters ``\\u0000``), non-finite numbers as ``NaN``/``Infinity``."""
    return json.dumps(effects.to_json(), sort_keys=True, ensure_ascii=True)
