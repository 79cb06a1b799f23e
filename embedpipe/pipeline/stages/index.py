"""``index`` stages: a FAISS similarity index over an encode stage's features."""

from __future__ import annotations

import shlex
from typing import Any, Literal

from pydantic import Field

from ..context import StageContext
from ..kinds import Params, Role, register_stage_kind

INDEX = "index"


class IndexParams(Params):
    """``index``: build a FAISS similarity index over an encode stage's features."""

    type: str = Field("auto", description="auto, flat, ivf, hnsw, pq... (see embedpipe.index).")
    metric: Literal["cosine", "l2", "ip"] = "cosine"
    options: dict[str, Any] = Field(default_factory=dict)


def next_steps(run: Any, upstream: dict[str, list[Any]]) -> list[str]:
    """Searching and serving the index just built."""
    feats = upstream.get("features") or []
    modality = feats[0].outputs.get("modality") if feats else None
    where = shlex.quote(str(run.output_path))
    query = "--query 'a funny, moving film'" if modality == "text" else "--query-image PATH.png"
    return [
        f"embedpipe search {where} {query} -k 5",
        f"embedpipe serve {where}    # search page; needs pip install 'embedpipe[serve]'",
    ]


@register_stage_kind(
    "index",
    version=1,
    params=IndexParams,
    inputs={"features": Role(("encode",))},
    provides=("index",),
    main_output="index",
    describe=lambda p: f"type={p.type}, metric={p.metric}",
    next_steps=next_steps,
)
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
