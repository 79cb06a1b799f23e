"""``encode`` stages: a frozen backbone over a dataset, reusing features of items already encoded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import StoreError
from ..context import StageContext, log
from ..kinds import EncodeParams

STORE = "features.h5"
LEFTOVER = "features.unsharded.h5"  # a crashed one-file encode, copied into a sharded one


def backbone_kwargs(ctx: StageContext, params: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`embedpipe.backbones.load_backbone` from stage parameters.

    Only what the file sets is passed, so the backbone's own defaults apply otherwise;
    ``weights: none`` means random initialisation.
    """
    kw: dict[str, Any] = dict(params.options)
    if params.weights is not None:
        kw["weights"] = None if params.weights.lower() == "none" else ctx.path_param(params.weights)
    for name in ("layer", "pooling"):
        value = getattr(params, name, None)
        if value is not None:
            kw[name] = value
    return kw


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
    from ...encode import EncodeResult

    p: EncodeParams = ctx.params  # type: ignore[assignment]
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
    common: dict[str, Any] = {
        "batch_size": p.batch_size,
        "num_workers": p.num_workers,
        "device": p.device,
        "precision": p.precision,
        "on_error": p.on_error,
        "dtype": p.dtype,
        "reuse_from": [*reuse, *leftovers],
        "progress": ctx.progress,
    }
    extra: dict[str, Any] = {}
    result: EncodeResult
    if sharded:
        from ...encode.executors import encode_sharded

        assert ctx.executor is not None
        result = encode_sharded(
            source,
            encoder,
            out,
            executor=ctx.executor.get(),
            n_shards=p.n_shards,
            shard_size=p.shard_size,
            **common,
        )
        Path(f"{out}.lock").unlink(missing_ok=True)  # encode_sharded's lock, released
        extra = {
            "sharded": True,
            "executor": result.executor,
            "n_shards": result.n_shards,
            "n_shards_cached": result.n_shards_cached,
        }
    else:
        from ...encode import encode

        result = encode(source, encoder, out, **common)
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
    from ...store.shards import is_sharded, shards_dir

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
    for p in sorted(sdir.iterdir()):
        if not p.name.endswith((".h5", ".h5.partial")):
            continue
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
