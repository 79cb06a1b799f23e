"""The ``hf-text:<hub id or folder>`` kind: a Hugging Face text model with a chosen pooling."""

from __future__ import annotations

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind

KIND = register_backbone_kind(
    BackboneKind(
        name="hf-text",
        spec_kind="hf_text",
        placeholder="<hub id or folder>",
        example="hf-text:sentence-transformers/all-MiniLM-L6-v2",
        description="a Hugging Face text model, pooled as asked (mean, cls, pooler); for a "
        "sentence-transformers folder's exact pipeline use sentence-transformers:",
        load="embedpipe.backbones.hf_text:load_hf_text",
        from_spec="embedpipe.backbones.hf_text:hf_text_from_spec",
        aliases=("hf_text",),
        trunk="encoder-layers",
    )
)
