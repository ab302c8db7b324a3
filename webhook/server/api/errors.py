"""JSON errors: one shape for every failure of the API, so clients parse one thing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send


class ApiError(Exception):
    """Raised by handlers; becomes ``{"error": message, "details"?: [...]}`` with ``status``."""

    def __init__(self, status: int, message: str, *, details: Sequence[Mapping[str, Any]] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.details:
            body["details"] = list(self.details)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def bad_request(message: str, *, field: str | None = None) -> ApiError:
    return ApiError(400, message, details=[{"loc": field, "msg": message}] if field else None)


def validation_failed(exc: pydantic.ValidationError, *, what: str = "body") -> ApiError:
    details = [
        {"loc": ".".join(str(part) for part in error["loc"]) or what, "msg": error["msg"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = details[0] if details else {"loc": what, "msg": "invalid"}
    return ApiError(422, f"invalid {what}: {first['loc']}: {first['msg']}", details=details)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope.get("path", "")  # the whole path: starlette keeps the mount's prefix in it
    response = JSONResponse({"error": f"no API route {path!r}; see GET /api/v1/openapi.json"}, status_code=404)
    await response(scope, receive, send)
