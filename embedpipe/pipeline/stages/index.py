"""``index`` stages: a FAISS similarity index over an encode stage's features."""

from __future__ import annotations

from typing import Any

from ..context import StageContext
from ..kinds import IndexParams

INDEX = "index"


def run(ctx: StageContext) -> dict[str, Any]:
    """Build the index (reproducibly: sampling is seeded) and save it as ``index/``."""
    from ...index import build_index

    p: IndexParams = ctx.params  # type: ignore[assignment]
    store = ctx.require("features").file("store")
    index = build_index(
        store, p.type, metric=p.metric, seed=ctx.seed, progress=ctx.progress, **p.options
    )
    index.save(ctx.out / INDEX)
    meta = index.meta
    return {
        "index": INDEX,
        "n": len(index),
        "kind": meta.kind,
        "factory": meta.factory,
        "metric": meta.metric,
        "search_params": dict(meta.search_params),
        "build_seconds": round(meta.build_seconds, 4),
    }
