"""Reading a request body without trusting its size: one limit for every endpoint."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(ValueError):
    pass


async def read_limited(request: Request, *, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes")
    return bytes(body)
