"""The ``word-vectors:<path>`` kind: static word vectors (GloVe / word2vec) averaged."""

from __future__ import annotations

from typing import Any

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind
from embedpipe.errors import Arg, ConfigError

_UNSET: Any = object()


def load(
    target: str,
    *,
    weights: Any = _UNSET,
    layer: Any = None,
    pooling: str | None = None,
    **options: Any,
) -> Any:
    """:func:`~embedpipe.backbones.word_vectors.load_word_vectors` with the generic arguments
    checked (the vectors file is the weights; pooling ``mean`` or ``idf_mean``)."""
    from embedpipe.backbones.word_vectors import load_word_vectors

    if weights not in (_UNSET, None) or layer is not None:
        raise ConfigError(
            "word-vectors backbones take no weights= or layer= (the vectors file is the weights)"
        )
    if pooling not in (None, "mean", "idf_mean"):
        raise ConfigError(f"word-vectors pooling {pooling!r} unknown; use 'mean' or 'idf_mean'")
    if pooling == "idf_mean" and options.get("idf") is None:
        raise ConfigError(
            Arg("pooling", "idf_mean"), " needs idf=<table or file> (or call fit_idf later)"
        )
    return load_word_vectors(target, **options)


KIND = register_backbone_kind(
    BackboneKind(
        name="word-vectors",
        spec_kind="word_vectors",
        placeholder="<path>",
        example="word-vectors:glove.6B.50d.txt",
        description="static word vectors (text or word2vec binary), mean or IDF-weighted mean",
        load=load,
        from_spec="embedpipe.backbones.word_vectors:word_vectors_from_spec",
        options=("idf", "normalize", "lowercase", "token_pattern", "format"),
        aliases=("word_vectors",),
    )
)
