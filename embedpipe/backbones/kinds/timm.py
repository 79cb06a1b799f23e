"""The ``timm:<model>`` kind: a timm model's pooled pre-logits (or a named stage)."""

from __future__ import annotations

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind

KIND = register_backbone_kind(
    BackboneKind(
        name="timm",
        spec_kind="timm",
        placeholder="<model>",
        example="timm:convnext_tiny.fb_in1k",
        description="a timm model: pooled pre-logits or a named stage, preprocessing from "
        "timm's data config (weights: pretrained tag, local file, or none)",
        load="embedpipe.backbones.timm_backbone:load_timm",
        from_spec="embedpipe.backbones.timm_backbone:timm_from_spec",
    )
)
