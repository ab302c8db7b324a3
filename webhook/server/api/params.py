"""Query parameters, read strictly: a bad value is a 400 naming the parameter, never a guess."""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Mapping

from webhook.server.api.errors import bad_request

_DURATION = re.compile(r"^([0-9]{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_PERIOD = datetime.timedelta(days=3650)
MAX_ID = 2**63 - 1  # resource_action_traces.id is a bigint


def text(query: Mapping[str, str], name: str, *, max_length: int = 253) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length:
        raise bad_request(f"{name} is longer than {max_length} characters", field=name)
    if _CONTROL.search(value):
        raise bad_request(f"{name} must not contain control characters", field=name)
    return value


def integer(query: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise bad_request(f"{name} must be an integer from {minimum} to {maximum}, got {raw!r}", field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise bad_request(f"{name} must be from {minimum} to {maximum}, got {value}", field=name)
    return value


def duration(raw: str, *, name: str) -> datetime.timedelta:
    match = _DURATION.match(raw)
    if not match or int(match.group(1)) == 0:
        raise bad_request(f"{name} must be a positive duration such as 30d, 12h, 90m or 2w, got {raw!r}", field=name)
    value = datetime.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if value > MAX_PERIOD:
        raise bad_request(f"{name} must be at most 3650d", field=name)
    return value


def moment(query: Mapping[str, str], name: str, *, now: datetime.datetime) -> datetime.datetime | None:
    """An RFC 3339 time, or a duration meaning that long before now (``since=2h``)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if _DURATION.match(raw):
        return now - duration(raw, name=name)
    try:
        value = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an RFC 3339 time (2026-11-21T21:00:00Z) or a duration "
                          f"before now (2h, 7d), got {raw!r}", field=name) from None
    return storable_time(value, name=name)


def storable_time(value: datetime.datetime, *, name: str) -> datetime.datetime:
    """``value`` in UTC, or a 400 when UTC cannot hold it.

    Python's datetime (and with it the driver) spans the years 1 to 9999 in UTC, less than a
    ``timestamptz`` column; a time near either end with an offset (``9999-12-31T23:59:59-23:00``)
    falls outside once converted, and used to reach the driver and come back as a 503.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    try:
        return value.astimezone(datetime.timezone.utc)
    except OverflowError:
        raise bad_request(f"{name} must lie between 0001-01-01 and 9999-12-31 in UTC, got {value.isoformat()}",
                          field=name) from None


def encode_cursor(at: datetime.datetime, action_id: int) -> str:
    raw = json.dumps({"t": at.isoformat(), "i": action_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: Mapping[str, str]) -> tuple[datetime.datetime, int] | None:
    raw = query.get("cursor")
    if raw is None or raw == "":
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        at = datetime.datetime.fromisoformat(data["t"])
        action_id = data["i"]
        if at.tzinfo is None or not isinstance(action_id, int) or isinstance(action_id, bool):
            raise ValueError
        if not 1 <= action_id <= MAX_ID:  # ids are bigint: one beyond cannot even be sent to PostgreSQL
            raise ValueError
        return at.astimezone(datetime.timezone.utc), action_id
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError,
            json.JSONDecodeError):
        raise bad_request("cursor is not one this API returned: pass next_cursor unchanged", field="cursor") from None
