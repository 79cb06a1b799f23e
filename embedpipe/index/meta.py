"""The metadata saved with an index (``meta.json``): what it holds and how it was built."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = "embedpipe-index"
FORMAT_VERSION = 3  # 2: rows.h5 may hold content and the index-row → store-row order
# 3: rows.h5 may hold content hashes, kept columns, rows pending a merge, removed rows (order -1)


class SourceMeta(BaseModel):
    """One feature store the index was built from."""

    model_config = ConfigDict(extra="allow")

    path: str
    n_rows: int
    offset: int
    fingerprint: str
    dataset_digest: str = ""
    image_root: str | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)


class IndexMeta(BaseModel):
    """Everything about an index but its vectors and rows.

    ``search_params`` (``{"nprobe": 12}``) is applied at load; ``tuning`` records how it was
    chosen (see :class:`~embedpipe.index.tune.TuneResult`). ``rerank`` (> 0) is the number of
    candidates per query that are re-scored exactly from the source stores' float features.
    ``has_content``: ``rows.h5`` holds each row's content (text, or image path / URL / key).
    """

    model_config = ConfigDict(extra="allow")

    format: Literal["embedpipe-index"] = "embedpipe-index"
    format_version: int = FORMAT_VERSION
    fingerprint: str
    backbone: dict[str, Any]
    modality: str
    dim: int
    n: int
    metric: Literal["cosine", "l2", "ip"]
    kind: str
    factory: str
    plan_reason: str = ""
    memory_budget: int | None = None
    search_params: dict[str, int] = Field(default_factory=dict)
    rerank: int = 0
    has_content: bool = False
    tuning: dict[str, Any] | None = None
    classes: list[str] = Field(default_factory=list)
    sources: list[SourceMeta] = Field(default_factory=list)
    build_seconds: float = 0.0
    #: Rows the last full build held (an update's "a rebuild would take" scales from it).
    build_n: int = 0
    prefix_ids: bool = False
    #: Kept store columns saved in ``rows.h5`` (filters can name them, with ``id``, ``label``).
    columns: list[str] = Field(default_factory=list)
    #: Only the first ``truncate_dim`` dimensions are indexed (Matryoshka prefix; 0: all).
    truncate_dim: int = 0
    #: Held-out recall of an index without a search knob but with lossy codes (int8,
    #: binary, a prefix): ``{"k", "recall", "recall_low", "recall_high", "n_queries",
    #: "queries", "rerank"}``.
    recall: dict[str, Any] | None = None
    #: What the last update did (``None`` for a fresh build).
    update: dict[str, Any] | None = None
    created: str = ""
    versions: dict[str, str] = Field(default_factory=dict)
