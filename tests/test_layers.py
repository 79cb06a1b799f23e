"""The layers of docs/architecture.md: a package never imports one above it (not even lazily,
inside a function), so data, backbones, store and executors know nothing of pipelines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "embedpipe"

#: Layer of each top-level subpackage / module; an import may only go to an equal or lower one.
LAYERS = {
    "errors": 0,
    "registry": 0,
    "_lazy": 0,
    "data": 1,
    "backbones": 1,
    "store": 1,
    "executors": 1,
    "encode": 2,
    "heads": 3,
    "index": 3,
    "curate": 4,
    "report": 5,
    "pipeline": 6,
    "cli": 7,
    "__init__": 8,
    "__main__": 8,
}


def _imports(path: Path) -> list[tuple[str, int]]:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = (
                [mod] if node.module or not node.level else [f"{mod}.{a.name}" for a in node.names]
            )
            out += [(n, node.lineno) for n in names]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
    return out


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "embedpipe":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_upward_import(path: Path) -> None:
    rel = path.relative_to(PKG)
    own = rel.parts[0].removesuffix(".py")
    bad = []
    for module, line in _imports(path):
        target = _layer_of(module)
        if target is None or target not in LAYERS:
            continue
        if LAYERS[target] > LAYERS[own]:
            bad.append(f"{rel}:{line} imports {module} ({own} < {target})")
    assert not bad, "\n".join(bad)
