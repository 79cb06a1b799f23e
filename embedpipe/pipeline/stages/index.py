"""``index`` stages: a FAISS similarity index over an encode stage's features."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..context import StageContext
from ..kinds import Params, Role, register_stage_kind

INDEX = "index"
log = logging.getLogger("embedpipe.pipeline")


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
    if modality == "text":
        # the demo's query suits the demo's snippets only; another dataset gets a placeholder
        demo = feats and _source_name(feats[0].output_path) == "builtin:rotten_tomatoes"
        query = "--query 'a funny, moving film'" if demo else "--query 'YOUR TEXT'"
    else:
        query = "--query-image PATH.png"
    return [
        f"embedpipe search {where} {query} -k 5",
        f"embedpipe serve {where}",  # the search page (pip install 'embedpipe[serve]')
    ]


def _source_name(store: Any) -> str | None:
    """The data source an encode stage's store was made from (``builtin:...``, a path)."""
    try:
        from ...store import FeatureStore

        with FeatureStore(store) as fs:
            return str((fs.provenance.get("extra") or {}).get("source", {}).get("name"))
    except Exception:  # noqa: BLE001 - a hint only
        return None


def previous_index(ctx: StageContext) -> Path | None:
    """The index this stage built on its last run, when only its input store changed since
    (same parameters and seed, its cache entry still complete): an update starts from it."""
    rec = ctx.cache.record(ctx.pipeline.name).get("stages", {}).get(ctx.name)
    if not rec or rec.get("kind") != ctx.kind or rec.get("key") == ctx.key:
        return None
    was, now = rec.get("key_inputs") or {}, ctx.params.model_dump(mode="json")
    if was.get("params") != now or was.get("seed") != ctx.seed:
        return None
    if not ctx.cache.is_complete(ctx.kind, rec["key"]):
        return None
    path = ctx.cache.entry_dir(ctx.kind, rec["key"]) / INDEX
    return path if path.is_dir() else None


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

    When only the input store changed since this stage's last run (the encode grew), the
    last index is copied and updated (:func:`embedpipe.index.update.update_index`: new rows
    added, rows gone removed, re-tuned only when its recall fell) instead of rebuilt.
    When the run has an executor and the input store is sharded, the shards are added on
    the executor (``build_index(..., executor=...)``); the index is the same either way.
    """
    from ...index import build_index
    from ...store.shards import is_sharded

    p: IndexParams = ctx.params  # type: ignore[assignment]
    store = ctx.require("features").file("store")
    prev = previous_index(ctx) if not is_sharded(store) else None
    if prev is not None:
        import shutil

        from ...index.update import update_index

        shutil.copytree(prev, ctx.out / INDEX)
        try:
            index, res = update_index(ctx.out / INDEX, store, seed=ctx.seed, progress=ctx.progress)
        except Exception as e:  # noqa: BLE001 - an update that cannot run falls back to a build
            log.warning("stage %s: updating the last index failed (%s); rebuilding", ctx.name, e)
            shutil.rmtree(ctx.out / INDEX, ignore_errors=True)
        else:
            log.info("stage %s: %s", ctx.name, res.summary())
            return _outputs(index, updated_from=prev.parent.name, update=res.summary())
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
    return _outputs(index, **({"added_on": executor.name} if executor is not None else {}))


def _outputs(index: Any, **extra: Any) -> dict[str, Any]:
    """The stage's outputs for a built or updated index, with ``extra`` on top."""
    meta = index.meta
    return {
        "index": INDEX,
        "n": len(index),
        "kind": meta.kind,
        "factory": meta.factory,
        "metric": meta.metric,
        "search_params": dict(meta.search_params),
        "build_seconds": round(meta.build_seconds, 4),
        **extra,
    }
