"""The ``clip:<hub id or folder>`` kind: a CLIP-style dual encoder (Hugging Face ``CLIPModel``
or ``SiglipModel``) whose image and text towers share one embedding space."""

from __future__ import annotations

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind

KIND = register_backbone_kind(
    BackboneKind(
        name="clip",
        spec_kind="clip",
        placeholder="<hub id or folder>",
        example="clip:openai/clip-vit-base-patch32",
        description="a CLIP / SigLIP dual encoder: tower=image (default) or text, one shared "
        "space (text queries over image indexes, zero-shot heads)",
        load="embedpipe.backbones.dual_encoder:load_clip",
        from_spec="embedpipe.backbones.dual_encoder:clip_from_spec",
        aliases=("siglip",),
    )
)
