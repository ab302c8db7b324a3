"""Request bodies: size-limited, JSON, an object — or a 400 saying which of those failed."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from webhook.server.api.errors import bad_request
from webhook.server.bodies import BodyTooLarge, read_limited


async def read_object(request: Request) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = await read_limited(request, limit=request.app.state.settings.max_body_bytes)
    except BodyTooLarge as error:
        raise bad_request(str(error)) from None
    if not raw.strip():
        raise bad_request("the body is empty: send a JSON object")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request(f"body must be a JSON object, not {type(data).__name__}")
    if _has_nul(data):
        raise bad_request("strings in the body must not contain NUL characters (\\u0000)")
    return raw, data


def _has_nul(value: Any) -> bool:
    """PostgreSQL text cannot hold NUL: refuse it up front rather than fail in the store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
