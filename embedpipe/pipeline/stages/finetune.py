"""``finetune`` stages: shallow fine-tuning (top blocks + a new head) on raw items.

The stage trains on its ``train`` dataset, predicts its ``test`` dataset, and writes the same
``evaluation.json`` / ``predictions.npz`` an ``evaluate`` stage reads, so fine-tuned models are
compared with heads on frozen features in one table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ...errors import ConfigError
from ..context import Entry, StageContext, log
from ..kinds import Params, register_stage_kind
from .encode import backbone_kwargs
from .evaluate import save_predictions

MODEL = "model"
EVALUATION = "evaluation.json"
PREDICTIONS = "predictions.npz"
CHUNK = 256


class FinetuneParams(Params):
    """``finetune``: train the top blocks of a backbone plus a new linear head on raw items."""

    backbone: str
    weights: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="Other backbone options.")
    train_blocks: int = Field(
        2, ge=1, description="Top blocks (CNN) or layers (transformer) to unfreeze."
    )
    epochs: int = Field(5, gt=0)
    lr: float = Field(1e-3, gt=0)
    head_lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    train_bn: bool = True
    batch_size: int = Field(64, gt=0, description="Training batch size (changes the result).")
    cache_activations: bool = Field(
        True, description="Run the frozen bottom once, not every epoch."
    )
    encode_batch_size: int = Field(64, gt=0)
    num_workers: int | None = Field(None, ge=0)
    device: str = "cpu"
    run_only: ClassVar[tuple[str, ...]] = (
        "cache_activations",
        "encode_batch_size",
        "num_workers",
        "device",
    )


def evaluate_entry(
    entry: Entry, test_store: Path | None, rel: str, out: Path, test_ids: list[str] | None
) -> tuple[Any, dict[str, Any]]:
    """A finetune entry was scored when it was built: copy its result and predictions."""
    from ...heads.evaluation import EvaluationReport

    report = EvaluationReport.from_json(entry.file("evaluation"))
    with np.load(entry.file("predictions")) as z:
        ids = z["ids"].tolist()
        if test_ids is not None and sorted(ids) != sorted(test_ids):
            raise ConfigError(
                f"finetune stage {entry.name!r} was tested on other items than the evaluate stage's "
                "test input; give both the same test dataset."
            )
        save_predictions(
            out / rel,
            ids,
            z["y_true"],
            z["y_pred"],
            z["proba"] if "proba" in z else None,
            z["classes"].tolist(),
        )
    result = report.results[0]
    result.baseline = report.baseline
    return result, report.data


@register_stage_kind(
    "finetune",
    version=1,
    params=FinetuneParams,
    datasets={"train": True, "test": True},
    path_params=("backbone", "weights"),
    loads_models=True,
    provides=("head",),
    main_output="model",
    describe=lambda p: f"backbone={p.backbone}, top {p.train_blocks} blocks, {p.epochs} epochs",
    evaluate_entry=evaluate_entry,
)
def run(ctx: StageContext) -> dict[str, Any]:
    """Fine-tune, save the model (safetensors + config), evaluate on the test dataset."""
    from ... import backbones
    from ...data.base import reference
    from ...heads.evaluation import (
        baseline_result,
        evaluate_predictions,
        holdout_report,
        majority_class,
    )
    from ...heads.finetuning import cache_activations, finetune, split_backbone

    p: FinetuneParams = ctx.params  # type: ignore[assignment]
    train, test = ctx.datasets["train"].source, ctx.datasets["test"].source
    ctx.seed_torch()
    encoder = backbones.load_backbone(
        ctx.path_param(p.backbone) or p.backbone,
        device=p.device,
        precision="fp32",
        **backbone_kwargs(ctx, p),
    )
    split = split_backbone(encoder, p.train_blocks)
    t0 = time.perf_counter()
    data: Any = train
    acts = ctx.out / "activations.h5"
    if p.cache_activations:
        data = cache_activations(
            split,
            train,
            acts,
            batch_size=p.encode_batch_size,
            num_workers=p.num_workers,
            device=p.device,
            precision="fp32",
            progress=ctx.progress,
        )
    result = finetune(
        split,
        data,
        epochs=p.epochs,
        lr=p.lr,
        head_lr=p.head_lr,
        weight_decay=p.weight_decay,
        batch_size=p.batch_size,
        train_bn=p.train_bn,
        label_smoothing=p.label_smoothing,
        seed=ctx.seed,
        device=p.device,
    )
    fit_seconds = time.perf_counter() - t0
    if acts.exists():
        acts.unlink()  # an intermediate: the model is what the entry keeps
    model = result.model
    model.save(ctx.out / MODEL)

    rows = np.flatnonzero(np.asarray(test.labels) >= 0)
    t1 = time.perf_counter()
    proba = (
        np.concatenate(
            [
                model.predict_proba([test.load(int(i)) for i in rows[s : s + CHUNK]])
                for s in range(0, len(rows), CHUNK)
            ]
        )
        if len(rows)
        else np.empty((0, len(model.classes)))
    )
    predict_seconds = time.perf_counter() - t1
    y_true = np.asarray(test.labels, np.int64)[rows]
    y_pred = proba.argmax(axis=1)
    labels = np.arange(len(model.classes))
    ids = [str(test.ids[int(i)]) for i in rows]
    save_predictions(ctx.out / PREDICTIONS, ids, y_true, y_pred, proba, model.classes)
    label = f"finetune[top {split.k} of {split.n_blocks} blocks, from {split.split_at}]"
    head = {
        "name": "finetune",
        "params": p.key_params(),
        "preprocess": [],
        "random_state": ctx.seed,
        "label": label,
    }
    # the same path as every other head: metrics, intervals, misclassified examples
    res = evaluate_predictions(
        ctx.name,
        head,
        y_true,
        y_pred,
        labels=labels,
        names=model.classes,
        scores=proba,
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
        ids=ids,
        inputs=[reference(test, int(i)) for i in rows],
        training_curve=result.history,
        seed=ctx.seed,
    )
    y_train = np.asarray(train.labels, np.int64)
    baseline = (
        baseline_result(majority_class(y_train), y_true, labels=labels, names=model.classes)
        if (y_train >= 0).any() and len(rows)
        else None
    )
    data_info = {
        "dataset_digest": ctx.datasets["test"].digest,
        "n_rows": int(len(rows)),
        "classes": model.classes,
        "backbone": encoder.spec.to_dict(),
        "fingerprint": encoder.fingerprint,
    }
    holdout_report(
        [res], data_info, {"train": ctx.datasets["train"].name, "top_k": 5}, baseline=baseline
    ).to_json(ctx.out / EVALUATION)
    metrics = {m: res.mean(m) for m in ("accuracy",)}
    log.info("%s: fine-tuned %s, test accuracy %.4f", ctx.name, label, metrics["accuracy"])
    return {
        "model": MODEL,
        "evaluation": EVALUATION,
        "predictions": PREDICTIONS,
        "accuracy": metrics["accuracy"],
        "best_epoch": result.best_epoch,
        "history": result.history,
        "split": split.info,
        "fit_seconds": round(fit_seconds, 3),
        "n_train": len(train),
        "n_test": int(len(rows)),
    }
