"""AdmissionReview v1, read strictly enough to answer "400: what is wrong" for bad input.

Only the fields the gate uses are modelled (here, and in :mod:`webhook.admission.objects` for the
objects under review); everything else the API server sends is ignored, so newer API servers never
break parsing. Nesting depth and number literals are bounded before and while parsing: Python's
parser would otherwise give up on either with an exception that is not a client error.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import pydantic

from webhook.admission.objects import Identifier, Username, model_for

ADMISSION_API_VERSION = "admission.k8s.io/v1"
MAX_DEPTH = 100          # objects and arrays within each other; a Deployment with managedFields is ~20
MAX_NUMBER_LENGTH = 64   # characters of one number literal; every Kubernetes number is an int64 or a float64

_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 we can answer; the message says what is wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": str(self)}
        if self.field:
            body["field"] = self.field
        return body


class _Lenient(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")


class GroupVersionKind(_Lenient):
    group: str = ""
    version: str
    kind: str


class GroupVersionResource(_Lenient):
    group: str = ""
    version: str
    resource: str


class UserInfo(_Lenient):
    username: Username = ""
    uid: str | None = None
    groups: list[pydantic.StrictStr] = []


class AdmissionRequest(_Lenient):
    uid: Identifier = pydantic.Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource
    subResource: str | None = None
    name: Identifier | None = None
    namespace: Identifier | None = None
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    userInfo: UserInfo = UserInfo()
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None
    dryRun: pydantic.StrictBool = False  # "yes" or 1 is a malformed review, not a dry run

    @pydantic.field_validator("dryRun", mode="before")
    @classmethod
    def _null_dry_run(cls, value: Any) -> Any:
        return False if value is None else value


class AdmissionReview(_Lenient):
    apiVersion: str
    kind: str
    request: AdmissionRequest


def parse_review(body: bytes) -> AdmissionReview:
    """Parse and validate a request body, raising ``BadReview`` with a precise message."""
    data = _load(body)
    if not isinstance(data, dict):
        raise BadReview(f"body must be a JSON object (an AdmissionReview), not {type(data).__name__}")
    if data.get("apiVersion") != ADMISSION_API_VERSION:
        raise BadReview(
            f"apiVersion must be {ADMISSION_API_VERSION!r}, got {data.get('apiVersion')!r}", field="apiVersion"
        )
    if data.get("kind") != "AdmissionReview":
        raise BadReview(f"kind must be 'AdmissionReview', got {data.get('kind')!r}", field="kind")
    request = data.get("request")
    if not isinstance(request, dict):
        raise BadReview("request is missing or not an object", field="request")
    if not request.get("uid") or not isinstance(request.get("uid"), str):
        raise BadReview("request.uid is missing or empty", field="request.uid")
    try:
        review = AdmissionReview.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _bad(exc, prefix="") from None
    _check_objects(review.request)
    return review


def _check_objects(request: AdmissionRequest) -> None:
    """Type-check the fields of ``object`` and ``oldObject`` that the gate will read."""
    model = model_for(group=request.resource.group, resource=request.resource.resource,
                      sub_resource=request.subResource or "", operation=request.operation)
    if model is None:
        return
    for name in ("object", "oldObject"):
        value = getattr(request, name)
        if value is None:
            continue
        try:
            model.model_validate(value)
        except pydantic.ValidationError as exc:
            raise _bad(exc, prefix=f"request.{name}.") from None


def _bad(exc: pydantic.ValidationError, *, prefix: str) -> BadReview:
    first = exc.errors()[0]
    where = prefix + ".".join(str(part) for part in first["loc"])
    where = where.rstrip(".") or "request"
    return BadReview(f"{where}: {first['msg']}", field=where)


def _load(body: bytes) -> Any:
    if _too_deep(body):
        raise BadReview(f"body is nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(body, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadReview(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # the depth check counts brackets; this is the parser's own guard, just in case
        raise BadReview(f"body is nested more than {MAX_DEPTH} levels deep") from None


def _too_deep(body: bytes) -> bool:
    """Whether objects and arrays nest beyond ``MAX_DEPTH``, from the brackets outside strings.

    Escaped backslashes and quotes go first, then everything but brackets and quotes; what lies
    between quotes then is string content. Each pass removes the innermost empty pairs, so a body
    needs as many passes as it is deep. Every step runs in C (a 3 MB body: about 10 ms).
    Unbalanced brackets are left for the parser to report.
    """
    skeleton = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_SQUARE, _NOT_STRUCTURE)
    skeleton = b"".join(skeleton.split(b'"')[::2])
    for _ in range(MAX_DEPTH):
        if not skeleton:
            return False
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            return skeleton.count(b"[") > MAX_DEPTH  # unbalanced: only the openings can still nest
        skeleton = shorter
    return bool(skeleton)


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_LENGTH:
        raise BadReview(f"body has a number of {len(text)} digits; at most {MAX_NUMBER_LENGTH} are accepted")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_LENGTH:
        raise BadReview(f"body has a number of {len(text)} characters; at most {MAX_NUMBER_LENGTH} are accepted")
    number = float(text)
    if not math.isfinite(number):
        raise BadReview(f"body has a number out of range: {text}")
    return number


def _constant(text: str) -> Any:
    raise BadReview(f"body is not valid JSON: {text} is not a JSON value")
