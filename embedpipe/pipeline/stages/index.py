"""``index`` stages: a FAISS similarity index over an encode stage's features."""

from __future__ import annotations

from typing import Any

from ..context import StageContext
from ..kinds import IndexParams

INDEX = "index"


def run(ctx: StageContext) -> dict[str, Any]:
    """Build the index (reproducibly: sampling is seeded) and save it as ``index/``.

    When the run has an executor and the input store is sharded, the shards are added on
    the executor (see :mod:`.index_shards`); the index is the same either way.
    """
    from ...index import build_index
    from ...store.shards import is_sharded

    p: IndexParams = ctx.params  # type: ignore[assignment]
    store = ctx.require("features").file("store")
    added_on = None
    if ctx.executor is not None and ctx.executor.configured and is_sharded(store):
        from .index_shards import build_index_on_shards

        executor = ctx.executor.get()
        added_on = executor.name
        index = build_index_on_shards(
            store, p.type, executor=executor, metric=p.metric, seed=ctx.seed, **p.options
        )
    else:
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
        **({"added_on": added_on} if added_on else {}),
    }
