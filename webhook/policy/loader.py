"""Reading OscillationPattern documents from a YAML stream (``--policy FILE``)."""

from __future__ import annotations

import pathlib

import pydantic
import yaml

from webhook.policy.model import OscillationPattern
from webhook.policy.resolved import PatternPolicy, PolicySource


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the document and the field."""


def load_policy_text(text: str, *, origin: str = "policy") -> list[PatternPolicy]:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise PolicyError(f"{origin}: not valid YAML: {exc}") from exc
    policies: list[PatternPolicy] = []
    for index, doc in enumerate(documents, start=1):
        if doc is None:  # an empty document between two `---`
            continue
        if not isinstance(doc, dict):
            raise PolicyError(f"{origin}: document {index} is not a mapping")
        if doc.get("kind") == "List":
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise PolicyError(f"{origin}: document {index}: items must be a list")
            places = [f"document {index} item {position}" for position in range(1, len(items) + 1)]
        else:
            items, places = [doc], [f"document {index}"]
        for item, place in zip(items, places, strict=True):
            try:
                pattern = OscillationPattern.model_validate(item)
                policies.append(PatternPolicy.from_document(pattern, source=PolicySource.FILE))
            except pydantic.ValidationError as exc:
                raise PolicyError(f"{origin}: {describe(item, place)}: {pydantic_problems(exc)}") from exc
            except ValueError as exc:  # PolicyInvalid names each field itself
                raise PolicyError(f"{origin}: {describe(item, place)}: {exc}") from exc
    return policies


def describe(item: object, place: str) -> str:
    """``document 2, OscillationPattern shop-scale``: where the bad document is, and its name if it has one."""
    name = (item.get("metadata") or {}).get("name") if isinstance(item, dict) else None
    if isinstance(name, str) and name:
        return f"{place}, OscillationPattern {name}"
    return place


def pydantic_problems(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'document'}: {err['msg']}"
        for err in exc.errors(include_url=False))


def load_policy_file(path: str | pathlib.Path) -> list[PatternPolicy]:
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
    return load_policy_text(text, origin=str(path))
