"""``train`` stages: fit a head (embedpipe.heads) on an encode stage's features."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ..context import StageContext
from ..kinds import TrainParams
from ..spec import Stage

HEAD = "head.joblib"


def _spec(params: TrainParams, seed: int) -> Any:
    from ...heads.registry import HeadSpec

    return HeadSpec(params.head, dict(params.options), params.preprocess, random_state=seed)


def check(stage: Stage) -> None:
    """Build the (unfitted) head, so a bad name or parameter fails before any stage runs."""
    try:
        _spec(stage.params, stage.seed).build()  # type: ignore[arg-type]
    except ConfigError as e:
        raise ConfigError(f"stage {stage.name!r} (train): {e}") from None


def run(ctx: StageContext) -> dict[str, Any]:
    """Fit the head on the labelled rows of the input store and save it as ``head.joblib``."""
    from ...heads.trained import train_head

    p: TrainParams = ctx.params  # type: ignore[assignment]
    ctx.seed_torch()  # torch heads
    spec = _spec(p, ctx.seed)
    head = train_head(ctx.require("train").file("store"), spec, out=ctx.out / HEAD)
    return {
        "head": HEAD,
        "label": spec.label,
        "spec": head.spec,
        "classes": head.classes,
        "n_rows": head.trained_on.get("n_rows"),
        "fit_seconds": head.training.get("fit_seconds"),
        "fingerprint": head.fingerprint,
    }
