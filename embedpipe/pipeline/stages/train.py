"""``train`` stages: fit a head (embedpipe.heads) on an encode stage's features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ...errors import ConfigError
from ..context import Entry, StageContext
from ..kinds import Params, Role, register_stage_kind
from ..spec import Stage

HEAD = "head.skops"  # skops.io, loads without running code (was a pickle in version 1)


class TrainParams(Params):
    """``train``: fit a head on an encode stage's features."""

    head: str = Field(
        description="Head name from embedpipe.heads (logreg, linear_svm, knn, torch_mlp...)."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The head's hyperparameters.")
    preprocess: str | list[str] | None = Field(
        "auto",
        description="auto (none for L2-normalised features, else standardize), standardize, "
        "l2, pca:N, l2+pca:64, none.",
    )


def _spec(params: TrainParams, seed: int) -> Any:
    from ...heads import HeadSpec

    return HeadSpec(params.head, dict(params.options), params.preprocess, random_state=seed)


def check(stage: Stage) -> None:
    """Check the head's name and options (scikit-learn's own constraints) and build it unfitted,
    so a bad name or value fails before any stage runs, in one line naming the stage."""
    from ...heads import validate_head_params

    p: TrainParams = stage.params  # type: ignore[assignment]
    try:
        validate_head_params(p.head, p.options)
        _spec(p, stage.seed).build()
    except ConfigError as e:
        raise ConfigError(f"stage {stage.name!r} (train): {e}") from None


def describe(p: TrainParams) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in p.options.items())
    return f"head={p.head}{f' ({opts})' if opts else ''}"


def evaluate_entry(
    entry: Entry, test_store: Path | None, rel: str, out: Path, test_ids: list[str] | None
) -> tuple[Any, dict[str, Any]]:
    """Score a trained head on the evaluate stage's test store (see ``evaluate_entry`` hooks)."""
    from ...heads.evaluation import evaluate_head
    from ...heads.trained import load_head
    from ...store import FeatureStore
    from .evaluate import save_predictions

    if test_store is None:
        raise ConfigError(f"head {entry.name!r} needs a 'test' input (an encode stage).")
    head = load_head(entry.file("head"))
    # the train stage spent the fit time: the report shows it
    report = evaluate_head(head, test_store, fit_seconds=head.training.get("fit_seconds"))
    result = report.results[0]
    preds = head.predict_store(test_store)
    with FeatureStore(test_store) as fs:
        y_true = np.asarray(fs.labels)
    save_predictions(out / rel, preds.ids, y_true, preds.labels, preds.proba, head.classes)
    return result, report.data


@register_stage_kind(
    "train",
    version=2,  # 2: heads saved with skops (version-1 entries hold pickles)
    params=TrainParams,
    inputs={"train": Role(("encode",))},
    provides=("head",),
    main_output="head",
    check=check,
    describe=describe,
    evaluate_entry=evaluate_entry,
)
def run(ctx: StageContext) -> dict[str, Any]:
    """Fit the head on the labelled rows of the input store and save it as ``head.skops``."""
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
