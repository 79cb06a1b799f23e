"""The ``torchvision:<model>`` kind (and bare torchvision classifier names such as ``resnet18``)."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind

_REGISTERED = re.compile(r"@register_model\([^)]*\)\s*\n(?:\s*@[^\n]*\n)*\s*def\s+(\w+)")


@functools.lru_cache(maxsize=1)
def model_names() -> tuple[str, ...]:
    """torchvision's classification models (``torchvision.models.list_models``), read from
    its source files' ``@register_model()`` functions without importing torch, so that a
    mistyped name is refused in milliseconds; imported only if that reading finds none.

    Examples
    --------
    >>> "resnet50" in model_names() and "mobilenet_v2" in model_names()
    True
    """
    spec = importlib.util.find_spec("torchvision")
    names: set[str] = set()
    if spec is not None and spec.origin:
        for f in (Path(spec.origin).parent / "models").glob("*.py"):
            names.update(_REGISTERED.findall(f.read_text(encoding="utf-8", errors="replace")))
    if not names:
        from embedpipe.backbones.weights_import import classification_models

        names.update(classification_models())
    return tuple(sorted(names))


def claims(name: str) -> str | None:
    """``name`` itself when it is a torchvision classification model, else ``None``."""
    return name if name in model_names() else None


KIND = register_backbone_kind(
    BackboneKind(
        name="torchvision",
        spec_kind="torchvision",
        placeholder="<model>",
        example="torchvision:resnet50",
        description="a torchvision classifier's penultimate layer or a named node "
        "(weights: enum name, local .pth/.safetensors, or none)",
        load="embedpipe.backbones.torchvision_backbone:load_torchvision",
        from_spec="embedpipe.backbones.torchvision_backbone:torchvision_from_spec",
        claims=claims,
        bare_names="embedpipe.backbones.kinds.torchvision:model_names",
        trunk="cnn-blocks",
    )
)
