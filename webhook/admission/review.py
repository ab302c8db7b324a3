"""AdmissionReview v1, read strictly enough to answer "400: what is wrong" for bad input.

Only the fields the gate uses are modelled; everything else the API server sends is ignored,
so newer API servers never break parsing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic

ADMISSION_API_VERSION = "admission.k8s.io/v1"


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
    username: str = ""
    uid: str | None = None
    groups: list[str] = []


class AdmissionRequest(_Lenient):
    uid: str = pydantic.Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource
    subResource: str | None = None
    name: str | None = None
    namespace: str | None = None
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
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadReview(f"body is not valid JSON: {exc}") from None
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
        return AdmissionReview.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadReview(f"{where}: {first['msg']}", field=where) from None
