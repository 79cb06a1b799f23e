"""Every registry loads its built-ins one way (its ``builtins`` module, imported on the first
look-up), and every built-in entry is registered where it is defined, never from a list kept
somewhere else (docs/architecture.md, "Extension points")."""

from __future__ import annotations

import inspect

import pytest

from embedpipe.backbones.kind import BACKBONE_KINDS, PRESETS
from embedpipe.data.forms import SOURCE_FORMS
from embedpipe.executors.registry import EXECUTORS
from embedpipe.heads.registry import HEADS
from embedpipe.index.kinds import INDEX_TYPES
from embedpipe.pipeline.kinds import STAGE_KINDS
from embedpipe.registry import Registry

REGISTRIES: dict[str, Registry] = {
    "BACKBONE_KINDS": BACKBONE_KINDS,
    "PRESETS": PRESETS,
    "SOURCE_FORMS": SOURCE_FORMS,
    "EXECUTORS": EXECUTORS,
    "HEADS": HEADS,
    "INDEX_TYPES": INDEX_TYPES,
    "STAGE_KINDS": STAGE_KINDS,
}


def _defined_in(entry: object) -> str | None:
    """The module that defines an entry: a class or function's own, an instance's class's, a
    stage kind's run function's; None for data entries (presets, head tables)."""
    run = getattr(entry, "run", None)
    if callable(run) and type(entry).__name__ == "KindInfo":
        return run.__module__
    if inspect.isclass(entry) or inspect.isfunction(entry):
        return entry.__module__
    module = type(entry).__module__
    if module.startswith("embedpipe.") and type(entry).__name__ not in (
        "BackboneKind",
        "Preset",
        "HeadInfo",
    ):
        return module
    return None


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_registry_names_and_builtins(name: str) -> None:
    registry = REGISTRIES[name]
    assert name.isupper() and name.endswith("S")
    entries = registry.entries()
    assert entries, f"{name} has no built-in entries"
    assert registry.builtins is not None or name in ("SOURCE_FORMS", "INDEX_TYPES")


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_every_builtin_is_registered_where_it_is_defined(name: str) -> None:
    registry = REGISTRIES[name]
    bad = []
    for key, entry in registry.entries().items():
        origin = registry.origins.get(key, "")
        if not origin.startswith("embedpipe."):
            continue  # a plugin's or a test's
        defined = _defined_in(entry)
        if defined is not None and defined != origin:
            bad.append(f"{key!r}: defined in {defined}, registered from {origin}")
        if (
            name == "BACKBONE_KINDS"
            and origin != f"embedpipe.backbones.kinds.{key.replace('-', '_')}"
        ):
            bad.append(f"{key!r}: registered from {origin}, not from its own kinds module")
    assert not bad, "\n".join(bad)
