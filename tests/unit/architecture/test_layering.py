"""The layering promised in ``webhook/__init__.py`` holds: no module imports a layer above its own."""

from __future__ import annotations

import ast
import pathlib

import webhook

ROOT = pathlib.Path(webhook.__file__).parent
ORDER = ["actions", "policy", "admission", "detection", "decision", "metrics", "services", "tls", "settings", "store",
         "effectiveness", "retention", "summaries", "engine", "kube", "server", "mcp", "cli"]
PEERS = {frozenset({"effectiveness", "retention"})}  # one level: they may use each other


def layer_of(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).parts
    return path.stem if len(parts) == 1 else parts[0]


def imported_layers(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "webhook":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("webhook."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("webhook."))
    return found


def test_every_layer_is_in_the_documented_order():
    documented = webhook.__doc__ or ""
    for layer in ORDER:
        if layer != "settings":
            assert f"``{layer}``" in documented, layer
    positions = [documented.index(f"``{layer}``") for layer in ORDER if layer != "settings"]
    assert positions == sorted(positions)


def test_no_module_imports_a_higher_layer():
    rank = {layer: index for index, layer in enumerate(ORDER)}
    violations = []
    for path in ROOT.rglob("*.py"):
        layer = layer_of(path)
        if layer not in rank:
            continue
        for target in imported_layers(path):
            if target in rank and rank[target] > rank[layer] and frozenset({layer, target}) not in PEERS:
                violations.append(f"{path.relative_to(ROOT)} ({layer}) imports {target}")
    assert violations == []
