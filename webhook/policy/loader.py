"""Reading OscillationPattern documents from a YAML stream (``--policy FILE``)."""

from __future__ import annotations

import pathlib

import pydantic
import yaml

from webhook.policy.model import OscillationPattern
from webhook.policy.resolved import PatternPolicy


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the document and the field."""


def load_policy_text(text: str, *, origin: str = "policy") -> list[PatternPolicy]:
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise PolicyError(f"{origin}: not valid YAML: {exc}") from exc
    policies: list[PatternPolicy] = []
    for index, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict):
            raise PolicyError(f"{origin}: document {index} is not a mapping")
        if doc.get("kind") == "List":
            items = doc.get("items") or []
        else:
            items = [doc]
        for item in items:
            try:
                pattern = OscillationPattern.model_validate(item)
            except pydantic.ValidationError as exc:
                name = (item.get("metadata") or {}).get("name", f"#{index}") if isinstance(item, dict) else f"#{index}"
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
                )
                raise PolicyError(f"{origin}: OscillationPattern {name}: {problems}") from exc
            except ValueError as exc:
                raise PolicyError(f"{origin}: document {index}: {exc}") from exc
            policies.append(PatternPolicy.from_document(pattern, source="file"))
    return policies


def load_policy_file(path: str | pathlib.Path) -> list[PatternPolicy]:
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
    return load_policy_text(text, origin=str(path))
