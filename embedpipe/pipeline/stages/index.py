"""``index`` stages: a FAISS similarity index over an encode stage's features."""

from __future__ import annotations

from typing import Any

from ..context import StageContext
from ..kinds import IndexParams

INDEX = "index"


def run(ctx: StageContext) -> dict[str, Any]:
    """Build the index (reproducibly: sampling is seeded) and save it as ``index/``.

    When the run has an executor and the input store is sharded, the shards are added on
    the executor (``build_index(..., executor=...)``); the index is the same either way.
    """
    from ...index import build_index
    from ...store.shards import is_sharded

    p: IndexParams = ctx.params  # type: ignore[assignment]
    store = ctx.require("features").file("store")
    executor = None  # only started when there are shards to add on it
    if ctx.executor is not None and ctx.executor.configured and is_sharded(store):
        executor = ctx.executor.get()
    index = build_index(
        store,
        p.type,
        metric=p.metric,
        seed=ctx.seed,
        progress=ctx.progress,
        executor=executor,
        **p.options,
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
        **({"added_on": executor.name} if executor is not None else {}),
    }
