"""The ``sentence-transformers:<hub id or folder>`` kind: a sentence-transformers model built
exactly from its ``modules.json`` (Transformer, Pooling, Dense, Normalize; prompts)."""

from __future__ import annotations

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind

KIND = register_backbone_kind(
    BackboneKind(
        name="sentence-transformers",
        spec_kind="sentence_transformers",
        placeholder="<hub id or folder>",
        example="sentence-transformers:sentence-transformers/all-MiniLM-L6-v2",
        description="a sentence-transformers model as its modules.json specifies (pooling, "
        "Dense, Normalize, prompts); equal to SentenceTransformer.encode",
        load="embedpipe.backbones.st_modules:load_sentence_transformer",
        from_spec="embedpipe.backbones.st_modules:sentence_transformer_from_spec",
        aliases=("st", "sentence_transformers"),
    )
)
