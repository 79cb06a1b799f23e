"""``encode`` stages: a frozen backbone over a dataset, reusing features of items already encoded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import StoreError
from ..context import StageContext, log
from ..kinds import EncodeParams, register_stage_kind

STORE = "features.h5"
LEFTOVER = "features.unsharded.h5"  # a crashed one-file encode, copied into a sharded one


def backbone_kwargs(ctx: StageContext, params: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`embedpipe.backbones.load_backbone` from stage parameters.

    Only what the file sets is passed, so the backbone's own defaults apply otherwise;
    ``weights: none`` means random initialisation.
    """
    from ...backbones.args import backbone_kwargs as parse

    return parse(
        weights=params.weights,
        layer=getattr(params, "layer", None),
        pooling=getattr(params, "pooling", None),
        options=params.options,
        resolve_path=ctx.path_param,
    )


def forecast_disk(params: Any, outputs: dict[str, Any], n_items: int) -> int:
    """A full store's size: its feature rows plus ids, labels and hashes (about 100 B a row)."""
    itemsize = 2 if params.encode_options().dtype == "float16" else 4
    return int(n_items * (int(outputs.get("dim", 0)) * itemsize + 100))


@register_stage_kind(
    "encode",
    version=1,
    params=EncodeParams,
    datasets={"data": True},
    path_params=("backbone", "weights"),
    resumable=True,
    loads_models=True,
    entry_dataset="data",
    main_output="store",
    forecast_disk=forecast_disk,
    describe=lambda p: (
        f"backbone={p.backbone}"
        + "".join(f", {k}={getattr(p, k)}" for k in ("layer", "pooling") if getattr(p, k))
    ),
)
def run(ctx: StageContext) -> dict[str, Any]:
    """Encode the stage's dataset into ``features.h5``.

    Items whose content hash is already in an earlier encode entry of the same backbone
    fingerprint (found through the cache's fingerprint index) are copied, not encoded; a
    store left in the temporary folder by a crashed run is resumed.

    When the run has an executor (``executor:`` in the file, ``--executor`` on the command
    line) the store is sharded as ``n_shards`` / ``shard_size`` say: ``features.h5`` is a
    master over ``features.shards/`` (relative paths, so the entry folder can be renamed
    into the cache), and the shards are encoded on the executor. Without one, those two
    parameters are not used.
    """
    from ... import backbones
    from ...encoding import encode
    from ...store.lock import lock_path

    p: Any = ctx.params  # an EncodeParams
    source = ctx.datasets["data"].source
    ctx.seed_torch()
    encoder = backbones.load_backbone(
        ctx.path_param(p.backbone) or p.backbone,
        device=p.device,
        precision=p.precision,
        **backbone_kwargs(ctx, p),
    )
    reuse = ctx.cache.stores_with_fingerprint(encoder.fingerprint, exclude=ctx.key)
    if reuse:
        log.info(
            "%s: %d earlier store(s) of this backbone may provide features", ctx.name, len(reuse)
        )
    out = ctx.out / STORE
    sharded = ctx.executor is not None and ctx.executor.configured
    if p.sharded and not sharded:
        log.info("%s: no executor in this run, so n_shards/shard_size are not used", ctx.name)
    # A crashed run of the other layout left rows here: copy them, then drop that layout.
    leftovers = _take_leftovers(out, sharded)
    options = p.encode_options(reuse_from=[*reuse, *leftovers], progress=ctx.progress)
    if not sharded:
        options = options.replace(n_shards=None, shard_size=None)
    executor = ctx.executor.get() if sharded and ctx.executor is not None else None
    result = encode(source, encoder, out, options, executor=executor)
    lock_path(out).unlink(missing_ok=True)  # the writer lock, released: not part of the entry
    extra: dict[str, Any] = {}
    if sharded:
        extra = {
            "sharded": True,
            "executor": getattr(result, "executor", ""),
            "n_shards": getattr(result, "n_shards", 0),
            "n_shards_cached": getattr(result, "n_shards_cached", 0),
        }
    _drop_leftovers(out, sharded)
    # Indexed before the entry is committed: readers skip keys whose entry is not complete.
    ctx.cache.add_fingerprint(encoder.fingerprint, ctx.key)
    return {
        "store": STORE,
        "fingerprint": encoder.fingerprint,
        "backbone": encoder.spec.name,
        "dim": encoder.dim,
        "modality": encoder.modality,
        "n_items": result.n_items,
        "n_encoded": result.n_encoded,
        "n_reused": result.n_reused,
        "n_resumed": result.n_resumed,
        "n_skipped": result.n_skipped,
        "encode_seconds": round(result.seconds, 4),
        "items_per_s": round(result.items_per_s, 2),
        "device": result.device,
        "precision": result.precision,
        **extra,
    }


def _take_leftovers(out: Path, sharded: bool) -> list[Path]:
    """Stores a crashed run of the other layout left in the building folder, for reuse.

    A one-file store is moved aside (a sharded encode refuses a one-file store at ``out``);
    shards are reused from their folder and their master is removed (a one-file encode
    would take it for a store to resume).
    """
    from ...store import FeatureStore
    from ...store.shards import is_sharded, shard_files, shards_dir

    aside = out.with_name(LEFTOVER)
    if sharded:
        if out.is_file() and not is_sharded(out):
            os.replace(out, aside)
        return [aside] if aside.is_file() else []
    sdir = shards_dir(out)
    if not sdir.is_dir():
        return []
    if is_sharded(out):
        out.unlink()
    found = []
    for p in shard_files(sdir):
        try:
            FeatureStore(p).close()
        except StoreError as e:  # a partial shard its dead writer left unreadable
            log.warning("not reusing unreadable shard %s: %s", p, e)
            continue
        found.append(p)
    return found


def _drop_leftovers(out: Path, sharded: bool) -> None:
    """Remove what :func:`_take_leftovers` found, once its rows are in the new store."""
    from ...store.shards import shards_dir

    if sharded:
        out.with_name(LEFTOVER).unlink(missing_ok=True)
    else:
        shutil.rmtree(shards_dir(out), ignore_errors=True)
