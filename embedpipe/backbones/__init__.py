"""Frozen backbones as encoders: a registry of backbone kinds (torchvision, Hugging Face text
and vision, sentence-transformers, timm, CLIP-style dual encoders, word vectors) and presets.

Importing this package imports no torch: the names below load on first use.

Examples
--------
>>> from embedpipe.backbones import load_backbone
>>> enc = load_backbone("resnet18", weights=None, crop_size=64, resize_size=64)
>>> enc.dim
512
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from embedpipe.backbones.base import (
        BackboneSpec,
        Encoder,
        TextEncoder,
        as_text_encoder,
        check_encodes,
        encoder_for,
        space_of,
    )
    from embedpipe.backbones.device import resolve_precision, select_device
    from embedpipe.backbones.kind import (
        BACKBONE_KINDS,
        PRESETS,
        BackboneKind,
        register_backbone_kind,
    )
    from embedpipe.backbones.registry import (
        backbone_table,
        describe_backbones,
        list_backbones,
        load_backbone,
        preset,
        register_backbone,
        resolve_encoder,
    )
    from embedpipe.backbones.weights_import import find_bundled_weights, import_weights

_LAZY = {
    "BackboneSpec": "base",
    "Encoder": "base",
    "TextEncoder": "base",
    "as_text_encoder": "base",
    "encoder_for": "base",
    "check_encodes": "base",
    "space_of": "base",
    "resolve_precision": "device",
    "select_device": "device",
    "BACKBONE_KINDS": "kind",
    "PRESETS": "kind",
    "BackboneKind": "kind",
    "register_backbone_kind": "kind",
    "backbone_table": "registry",
    "describe_backbones": "registry",
    "list_backbones": "registry",
    "load_backbone": "registry",
    "preset": "registry",
    "register_backbone": "registry",
    "resolve_encoder": "registry",
    "find_bundled_weights": "weights_import",
    "import_weights": "weights_import",
}

__all__ = [
    "BackboneKind",
    "BackboneSpec",
    "Encoder",
    "BACKBONE_KINDS",
    "PRESETS",
    "TextEncoder",
    "as_text_encoder",
    "backbone_table",
    "describe_backbones",
    "check_encodes",
    "encoder_for",
    "find_bundled_weights",
    "import_weights",
    "list_backbones",
    "load_backbone",
    "preset",
    "register_backbone",
    "register_backbone_kind",
    "resolve_encoder",
    "resolve_precision",
    "select_device",
    "space_of",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, prefix="embedpipe.backbones.")
