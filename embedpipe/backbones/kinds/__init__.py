"""The backbone kinds embedpipe ships, one module each (importing a module registers its kind).

These modules are light: each registers a :class:`~embedpipe.backbones.kind.BackboneKind` whose
hooks name the implementation lazily, so listing kinds imports no torch.
"""

from __future__ import annotations

from embedpipe.backbones.kinds import (  # noqa: F401
    clip,
    hf_text,
    hf_vision,
    sentence_transformers,
    timm,
    torchvision,
    word_vectors,
)
