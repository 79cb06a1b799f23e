"""The ``hf-vision:<hub id or folder>`` kind: a Hugging Face vision model and its processor."""

from __future__ import annotations

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind

KIND = register_backbone_kind(
    BackboneKind(
        name="hf-vision",
        spec_kind="hf_vision",
        placeholder="<hub id or folder>",
        example="hf-vision:google/vit-base-patch16-224-in21k",
        description="a Hugging Face vision model with its own image processor (cls, mean, pooler)",
        load="embedpipe.backbones.hf_vision:load_hf_vision",
        from_spec="embedpipe.backbones.hf_vision:hf_vision_from_spec",
        aliases=("hf_vision",),
    )
)
