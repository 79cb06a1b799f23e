"""``finetune`` stages: shallow fine-tuning (top blocks + a new head) on raw items.

The stage trains on its ``train`` dataset, predicts its ``test`` dataset, and writes the same
``evaluation.json`` / ``predictions.npz`` an ``evaluate`` stage reads, so fine-tuned models are
compared with heads on frozen features in one table.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..context import StageContext, log
from ..kinds import FinetuneParams
from .encode import backbone_kwargs
from .evaluate import save_predictions

MODEL = "model"
EVALUATION = "evaluation.json"
PREDICTIONS = "predictions.npz"
CHUNK = 256


def _stat(v: float | None) -> dict[str, Any] | None:
    return None if v is None else {"mean": float(v), "std": 0.0, "folds": [float(v)]}


def run(ctx: StageContext) -> dict[str, Any]:
    """Fine-tune, save the model (safetensors + config), evaluate on the test dataset."""
    from sklearn.metrics import confusion_matrix

    from ... import backbones
    from ...heads import EvaluationReport, HeadResult, classification_metrics, per_class_report
    from ...heads.finetune import cache_activations, finetune, split_backbone

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
    metrics = classification_metrics(y_true, y_pred, proba, labels=labels)
    label = f"finetune[top {split.k} of {split.n_blocks} blocks, from {split.split_at}]"
    head = {
        "name": "finetune",
        "params": p.key_params(),
        "preprocess": [],
        "random_state": ctx.seed,
        "label": label,
    }
    res = HeadResult(
        name=ctx.name,
        head=head,
        scores={m: _stat(v) for m, v in metrics.items()},
        fit_seconds=_stat(fit_seconds),
        predict_seconds=_stat(predict_seconds),
        per_class=per_class_report(y_true, y_pred, labels, model.classes),
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    )
    data_info = {
        "dataset_digest": ctx.datasets["test"].digest,
        "n_rows": int(len(rows)),
        "classes": model.classes,
        "backbone": encoder.spec.to_dict(),
        "fingerprint": encoder.fingerprint,
    }
    EvaluationReport(
        "holdout", data_info, {"train": ctx.datasets["train"].name, "top_k": 5}, [res]
    ).to_json(ctx.out / EVALUATION)
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
