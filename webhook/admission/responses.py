"""Named AdmissionResponse shapes, in the spirit of controller-runtime's Allowed/Denied/Warnings.

Every helper returns the whole AdmissionReview body, so a handler's return value is exactly
what goes on the wire.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from webhook.admission.review import ADMISSION_API_VERSION

MAX_WARNING_LENGTH = 120
_REASONS = {403: "Forbidden", 429: "TooManyRequests", 500: "InternalError"}


def _review(uid: str, response: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": "AdmissionReview",
        "response": {"uid": uid, **response},
    }


def clip_warning(text: str) -> str:
    """API servers cap warnings; keep them readable instead of letting them be cut mid-word."""
    text = " ".join(text.split())
    if len(text) <= MAX_WARNING_LENGTH:
        return text
    return text[: MAX_WARNING_LENGTH - 1].rstrip() + "…"


def allowed(uid: str, *, warnings: Sequence[str] = ()) -> dict[str, Any]:
    response: dict[str, Any] = {"allowed": True}
    if warnings:
        response["warnings"] = [clip_warning(w) for w in warnings]
    return _review(uid, response)


def denied(uid: str, *, code: int, message: str, warnings: Sequence[str] = (),
           retry_after: int | None = None) -> dict[str, Any]:
    """A refusal. ``retry_after`` (seconds) becomes ``status.details.retryAfterSeconds``, which the
    API server turns into the ``Retry-After`` header of its own answer, so clients retry."""
    response: dict[str, Any] = {
        "allowed": False,
        "status": {
            "status": "Failure",
            "code": code,
            "reason": _REASONS.get(code, "Forbidden"),
            "message": message,
        },
    }
    if retry_after is not None:
        response["status"]["details"] = {"retryAfterSeconds": retry_after}
    if warnings:
        response["warnings"] = [clip_warning(w) for w in warnings]
    return _review(uid, response)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the gate answers, without the wire format: the decision layer says this, the edge
    (:func:`review`) puts it in an AdmissionReview with the request's uid."""

    allowed: bool
    code: int | None = None
    message: str | None = None
    warnings: tuple[str, ...] = ()
    retry_after: int | None = None   # seconds, for a refusal the client should simply retry

    @classmethod
    def allow(cls) -> Verdict:
        return cls(allowed=True)

    @classmethod
    def warn(cls, *warnings: str) -> Verdict:
        """Allowed, with warnings (the API server shows them to the client)."""
        return cls(allowed=True, warnings=tuple(warnings))

    @classmethod
    def deny(cls, *, code: int, message: str, warnings: Sequence[str] = (),
             retry_after: int | None = None) -> Verdict:
        return cls(allowed=False, code=code, message=message, warnings=tuple(warnings), retry_after=retry_after)


def review(uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview answering request ``uid`` with ``verdict``."""
    if verdict.allowed:
        return allowed(uid, warnings=verdict.warnings)
    assert verdict.code is not None and verdict.message is not None
    return denied(uid, code=verdict.code, message=verdict.message, warnings=verdict.warnings,
                  retry_after=verdict.retry_after)
