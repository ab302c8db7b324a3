"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document of the API (no authentication).

Bodies and responses are the JSON Schemas of the pydantic models the handlers validate and
answer with (``schemas``, ``webhook.effectiveness.model``, ``webhook.admission.review``), so
the document describes what the code does; only paths, parameters and status codes are
written out here.
"""

from __future__ import annotations

import functools
from typing import Any

import pydantic
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse

import webhook
from webhook.admission.review import ADMISSION_API_VERSION, AdmissionReview
from webhook.effectiveness.model import Assessment
from webhook.server.api import schemas

REF = "#/components/schemas/{model}"
_MODELS: list[type[pydantic.BaseModel]] = [
    schemas.Error, schemas.HistoryPage, schemas.AssessedAction, schemas.AssessedCorrelation,
    schemas.EffectivenessReport, schemas.SafetyCheckAction, schemas.SafetyCheckResult, Assessment, AdmissionReview,
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if headers:
        response["headers"] = headers
    return response


def _common(*, body: bool) -> dict[str, Any]:
    responses = {
        "400": _error("Malformed request: a bad query parameter, or a body that is not a JSON object"),
        "401": _error("No, malformed or unknown bearer token, or no authentication configured",
                      headers={"WWW-Authenticate": {"description": 'Bearer realm="safety-gate"',
                                                    "schema": {"type": "string"}}}),
        "403": _error("The token's user may not get (reads) or create (writes) oscillationalerts"),
        "405": _error("Method not allowed on this path",
                      headers={"Allow": {"description": "The allowed methods", "schema": {"type": "string"}}}),
        "503": _error("A store (or the Kubernetes API, for token checks) is unreachable; try again"),
    }
    if body:
        responses["422"] = _error("The body failed validation; details name each field")
    return responses


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_TEXT = {"type": "string", "maxLength": 253, "pattern": r"^[^\x00-\x1f\x7f]*$"}
_DURATION = r"^[0-9]{1,6}[smhdw]$"
_MOMENT = {"type": "string", "description": "RFC 3339 time, or a duration before now such as 2h or 7d",
           "pattern": r"^([0-9]{1,6}[smhdw]|[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}"
                      r"(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?)?$"}


def build() -> dict[str, Any]:
    _, top = models_json_schema([(model, "validation") for model in _MODELS], ref_template=REF)
    components = top.get("$defs", {})
    review = components["AdmissionReview"]
    review["properties"]["apiVersion"] = {"type": "string", "const": ADMISSION_API_VERSION}
    review["properties"]["kind"] = {"type": "string", "const": "AdmissionReview"}
    components["AdmissionRequest"]["properties"]["dryRun"] = {
        "anyOf": [{"type": "boolean"}, {"type": "null"}], "default": False, "description": "null means false"}
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    history = {
        "get": {
            "operationId": "listHistory",
            "summary": "Recorded actions, newest first, paginated by an opaque cursor",
            "security": security,
            "parameters": [
                _query("namespace", "Only this namespace", _TEXT),
                _query("kind", "Only this kind (Deployment, StatefulSet, ...)", {**_TEXT, "maxLength": 63}),
                _query("name", "Only this name", _TEXT),
                _query("action_type", "Only this action type", {**_TEXT, "maxLength": 128}),
                _query("since", "Actions at or after this time", _MOMENT),
                _query("until", "Actions at or before this time", _MOMENT),
                _query("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
                _query("cursor", "next_cursor of the previous page", {"type": "string"}),
            ],
            "responses": {"200": _json(_ref("HistoryPage"), "One page of actions"), **_common(body=False)},
        },
    }
    assessment_body = {"required": True, "content": {"application/json": {"schema": _ref("Assessment")}}}
    assess = {
        "post": {
            "operationId": "assessAction",
            "summary": "Record how well one action worked; the next decision on its target sees it",
            "security": security,
            "parameters": [{"name": "id", "in": "path", "required": True, "description": "The action's id",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}],
            "requestBody": assessment_body,
            "responses": {"200": _json(_ref("AssessedAction"), "The action with its assessment"),
                          "404": _error("No action with this id"), **_common(body=True)},
        },
    }
    assess_correlation = {
        "post": {
            "operationId": "assessCorrelation",
            "summary": "Record one assessment on every action carrying a correlation id",
            "security": security,
            "parameters": [{"name": "correlation_id", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 512,
                                       "pattern": r"^[^\x00-\x1f\x7f/]+$"}}],
            "requestBody": assessment_body,
            "responses": {"200": _json(_ref("AssessedCorrelation"), "The actions with their assessment"),
                          "404": _error("No action with this correlation id"), **_common(body=True)},
        },
    }
    report = {
        "get": {
            "operationId": "effectivenessReport",
            "summary": "Effectiveness aggregates (mean, 95% interval, trend) per action type within a scope",
            "security": security,
            "parameters": [
                _query("scope", "How to group", {"type": "string", "enum": ["global", "namespace", "alert", "model"],
                                                 "default": "global"}),
                _query("value", "Only this namespace, alert name or model", _TEXT),
                _query("action_type", "Only this action type", {**_TEXT, "maxLength": 128}),
                _query("period", "How far back (s, m, h, d, w; at most 3650d)",
                       {"type": "string", "pattern": _DURATION, "default": "30d"}),
            ],
            "responses": {"200": _json(_ref("EffectivenessReport"), "Fresh aggregates"), **_common(body=False)},
        },
    }
    safety = {
        "post": {
            "operationId": "safetyCheck",
            "summary": "The gate's decision on a proposed action, with findings; records nothing",
            "security": security,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "oneOf": [_ref("AdmissionReview"), _ref("SafetyCheckAction")]}}}},
            "responses": {"200": _json(_ref("SafetyCheckResult"), "The decision"), **_common(body=True)},
        },
    }
    openapi_get = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          "405": _common(body=False)["405"]},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "safety-gate API", "version": webhook.__version__,
                 "description": "History, effectiveness and safety checks of the safety-gate admission webhook."},
        "servers": [{"url": "/"}],
        "paths": {
            "/api/v1/history": history,
            "/api/v1/actions/{id}/effectiveness": assess,
            "/api/v1/actions/by-correlation/{correlation_id}/effectiveness": assess_correlation,
            "/api/v1/effectiveness": report,
            "/api/v1/safety-check": safety,
            "/api/v1/openapi.json": openapi_get,
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token from --api-token-file, or a Kubernetes token "
                                                          "checked by TokenReview when the gate has a cluster"}},
        },
    }


@functools.cache
def cached() -> dict[str, Any]:
    return build()


async def document(request: Request) -> JSONResponse:
    return JSONResponse(cached())
