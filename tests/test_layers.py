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
    "units": 0,
    "specs": 0,
    "files": 0,
    "_lazy": 0,
    "data": 1,
    "backbones": 1,
    "store": 1,
    "executors": 1,
    "encoding": 2,
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


def _private_crossings(path: Path) -> list[str]:
    """Imports of a private (leading underscore) module or name of another embedpipe package."""
    rel = path.relative_to(PKG)
    own = rel.parts[0].removesuffix(".py")
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
                keep = len(parts) - node.level + (1 if path.name == "__init__.py" else 0)
                base = parts[:keep]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [(mod, [a.name for a in node.names])]
        elif isinstance(node, ast.Import):
            targets = [(a.name, []) for a in node.names]
        else:
            continue
        for module, names in targets:
            target = _layer_of(module)
            if target is None or target == own:
                continue
            parts = module.split(".")[1:]
            private = [p for p in parts if p.startswith("_") and not p.startswith("__")]
            private += [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                bad.append(f"{rel}:{node.lineno} imports {module} {names} (private: {private})")
    return bad


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_private_name_crosses_a_package(path: Path) -> None:
    bad = _private_crossings(path)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_is_made_callable(path: Path) -> None:
    """A package whose module object is swapped for a callable class (``sys.modules[...]
    .__class__ = ...``) hides a name clash instead of fixing it."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Attribute) and t.attr == "__class__":
                    pytest.fail(f"{path.relative_to(PKG)}:{node.lineno} assigns __class__")
