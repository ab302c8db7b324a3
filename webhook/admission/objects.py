"""The fields of the request objects the gate reads, type-checked before anything reads them.

``extract`` reads a handful of fields out of objects that are otherwise opaque. A wrongly typed
one (``spec: "x"``, ``annotations: [1]``, ``resources: 1.5``) used to surface as an exception deep
in the gate and be answered "history unavailable, allowed unchecked": a malformed request let
through as if the stores were down. Here each such field has a type, and a value the history
could not store (a NUL in a name or image, replicas beyond int32, a quantity like ``1e309``) is
refused too — the alternative is admitting a change and then failing to record it. Everything the
gate does not read stays unchecked, so objects of newer API versions still parse.

Limits that are not Kubernetes' own are documented in the user guide ("Limits on input").
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import pydantic

from webhook.actions.quantities import parse_quantity

INT32_MAX = 2**31 - 1           # spec.replicas is an int32, and so are the history's replica columns
MAX_CONTAINERS = 256            # containers + initContainers of one pod template (real pods: tens)
MAX_QUANTITY = 1e24             # cores or bytes: far beyond any node, far below what breaks a float


def _storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL. (Lone surrogates, a JSON ``\\ud800``, pydantic refuses already.)"""
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


# Strings the history stores and indexes: storable, and short enough for an index entry.
# Kubernetes' own limits where it has them (names: DNS subdomains); the others keep every index
# entry of the history well below PostgreSQL's limit of about 2,700 bytes. Spelled out (not built
# by a function) so type checkers see them as the str they are.
Identifier = Annotated[pydantic.StrictStr, pydantic.Field(max_length=253), pydantic.AfterValidator(_storable)]
Username = Annotated[pydantic.StrictStr, pydantic.Field(max_length=512), pydantic.AfterValidator(_storable)]
Image = Annotated[pydantic.StrictStr, pydantic.Field(max_length=4096), pydantic.AfterValidator(_storable)]
Replicas = Annotated[pydantic.StrictInt, pydantic.Field(ge=0, le=INT32_MAX)]
StringMap = dict[pydantic.StrictStr, pydantic.StrictStr]


def _quantity(value: Any) -> Any:
    """cpu and memory are compared as numbers: they must read as finite, bounded quantities."""
    number = parse_quantity(value)
    if number is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    if not math.isfinite(number) or abs(number) > MAX_QUANTITY:
        raise ValueError(f"{value!r} is out of range (at most {MAX_QUANTITY:g})")
    return value


Quantity = Annotated[pydantic.StrictStr | pydantic.StrictInt | pydantic.StrictFloat,
                     pydantic.AfterValidator(_quantity)]
OtherQuantity = pydantic.StrictStr | pydantic.StrictInt | pydantic.StrictFloat


class _Read(pydantic.BaseModel):
    """Only the fields the gate reads; the rest is ignored, never rejected."""

    model_config = pydantic.ConfigDict(extra="ignore")


class ResourceList(pydantic.RootModel[dict[pydantic.StrictStr, OtherQuantity]]):
    @pydantic.model_validator(mode="after")
    def _compared(self) -> ResourceList:
        for key in ("cpu", "memory"):
            if key in self.root:
                try:
                    _quantity(self.root[key])
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return self


class Resources(_Read):
    requests: ResourceList | None = None
    limits: ResourceList | None = None


class Container(_Read):
    name: Identifier
    image: Image | None = None
    resources: Resources | None = None


class PodSpec(_Read):
    containers: list[Container] | None = None
    initContainers: list[Container] | None = None

    @pydantic.model_validator(mode="after")
    def _bounded(self) -> PodSpec:
        count = len(self.containers or ()) + len(self.initContainers or ())
        if count > MAX_CONTAINERS:
            raise ValueError(f"{count} containers in one pod template: at most {MAX_CONTAINERS}")
        return self


class Metadata(_Read):
    name: Identifier | None = None
    namespace: Identifier | None = None
    labels: StringMap | None = None
    annotations: StringMap | None = None  # free text: NUL bytes are stripped where read, not refused


class PodTemplate(_Read):
    metadata: Metadata | None = None
    spec: PodSpec | None = None


class WorkloadSpec(_Read):
    replicas: Replicas | None = None
    template: PodTemplate | None = None


class Workload(_Read):
    """A Deployment or StatefulSet, old or new."""

    metadata: Metadata | None = None
    spec: WorkloadSpec | None = None


class ScaleSpec(_Read):
    replicas: Replicas | None = None


class Scale(_Read):
    """``autoscaling/v1 Scale``: the scale subresource."""

    metadata: Metadata | None = None
    spec: ScaleSpec | None = None


class Param(_Read):
    name: Identifier
    value: Any = None  # string, array or object (Tekton); only strings and numbers are read


class PipelineRef(_Read):
    name: Identifier | None = None


class PipelineRunSpec(_Read):
    params: list[Param] | None = None
    pipelineRef: PipelineRef | None = None


class PipelineRun(_Read):
    metadata: Metadata | None = None
    spec: PipelineRunSpec | None = None


def model_for(*, group: str, resource: str, sub_resource: str, operation: str) -> type[_Read] | None:
    """The shape ``extract`` reads for this kind of request (None: it reads no object)."""
    if group == "apps" and resource in ("deployments", "statefulsets") and operation == "UPDATE":
        return {"": Workload, "scale": Scale}.get(sub_resource)
    if group == "tekton.dev" and resource == "pipelineruns" and operation == "CREATE" and not sub_resource:
        return PipelineRun
    return None
