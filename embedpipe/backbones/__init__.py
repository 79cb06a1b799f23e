"""Frozen backbones as encoders: a registry of torchvision, Hugging Face and word-vector models.

Examples
--------
>>> from embedpipe.backbones import load_backbone
>>> enc = load_backbone("resnet18", weights=None, crop_size=64, resize_size=64)
>>> enc.dim
512
"""

from __future__ import annotations

from embedpipe.backbones.base import BackboneSpec, Encoder, TextEncoder
from embedpipe.backbones.device import resolve_precision, select_device
from embedpipe.backbones.registry import (
    describe_backbones,
    list_backbones,
    load_backbone,
    preset,
    register_backbone,
)
from embedpipe.backbones.weights_import import find_bundled_weights, import_weights

__all__ = [
    "BackboneSpec",
    "Encoder",
    "TextEncoder",
    "describe_backbones",
    "find_bundled_weights",
    "import_weights",
    "list_backbones",
    "load_backbone",
    "preset",
    "register_backbone",
    "resolve_precision",
    "select_device",
]
