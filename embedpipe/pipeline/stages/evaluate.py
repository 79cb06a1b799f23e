"""``evaluate`` stages: score heads on a held-out encode stage; keep every head's predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ..context import Entry, StageContext
from ..kinds import EvaluateParams

EVALUATION = "evaluation.json"


def save_predictions(
    path: Path,
    ids: list[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[str],
) -> None:
    """Predictions as ``.npz``: ids, true and predicted labels, probabilities (if any), classes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "ids": np.asarray(ids, dtype=str),
        "y_true": np.asarray(y_true, np.int64),
        "y_pred": np.asarray(y_pred, np.int64),
        "classes": np.asarray(classes, dtype=str),
    }
    if proba is not None:
        arrays["proba"] = np.asarray(proba, np.float64)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _train_head(entry: Entry, test_store: Path, rel: str, out: Path) -> tuple[Any, dict[str, Any]]:
    from ...heads.evaluation import evaluate_head
    from ...heads.trained import load_head
    from ...store import FeatureStore

    head = load_head(entry.file("head"))
    report = evaluate_head(head, test_store)
    result = report.results[0]
    preds = head.predict_store(test_store)
    with FeatureStore(test_store) as fs:
        y_true = fs.labels
    save_predictions(out / rel, preds.ids, y_true, preds.labels, preds.proba, head.classes)
    return result, report.data


def _finetune_head(
    entry: Entry, rel: str, out: Path, test_ids: list[str] | None
) -> tuple[Any, dict[str, Any]]:
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
    return report.results[0], report.data


def run(ctx: StageContext) -> dict[str, Any]:
    """Evaluate every head on the test store; write ``evaluation.json`` and ``predictions/*.npz``."""
    from ...heads.evaluation import EvaluationReport

    p: EvaluateParams = ctx.params  # type: ignore[assignment]
    test = ctx.input("test")
    test_store = test.file("store") if test is not None else None
    test_ids: list[str] | None = None
    if test_store is not None:
        from ...store import FeatureStore

        with FeatureStore(test_store) as fs:
            test_ids = fs.ids.tolist()
    results, data, predictions = [], None, {}
    for entry in ctx.inputs["heads"]:
        rel = f"predictions/{entry.name}.npz"
        if entry.kind == "train":
            if test_store is None:
                raise ConfigError(
                    f"stage {ctx.name!r} (evaluate): head {entry.name!r} needs a 'test' input (an encode stage)."
                )
            result, d = _train_head(entry, test_store, rel, ctx.out)
        else:
            result, d = _finetune_head(entry, rel, ctx.out, test_ids)
        result.head = {**result.head, "label": result.head.get("label") or result.name}
        result.name = entry.name
        results.append(result)
        predictions[entry.name] = rel
        data = data or d
    report = EvaluationReport(
        "holdout",
        data or {},
        {"test": test.name if test else None},
        results,
        ranking_metric=p.primary_metric,
    )
    report.to_json(ctx.out / EVALUATION)
    scores = {r.name: {m: r.mean(m) for m in report.metrics} for r in report.results}
    return {
        "evaluation": EVALUATION,
        "predictions": predictions,
        "best": report.best.name,
        "ranking_metric": p.primary_metric,
        "scores": json.loads(json.dumps(scores)),
    }
