"""``encode`` stages: a frozen backbone over a dataset, reusing features of items already encoded."""

from __future__ import annotations

from typing import Any

from ..context import StageContext, log
from ..kinds import EncodeParams

STORE = "features.h5"


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
    """
    from ... import backbones
    from ...encode import encode

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
    result = encode(
        source,
        encoder,
        ctx.out / STORE,
        batch_size=p.batch_size,
        num_workers=p.num_workers,
        device=p.device,
        precision=p.precision,
        on_error=p.on_error,
        dtype=p.dtype,
        reuse_from=reuse,
        progress=ctx.progress,
    )
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
    }
