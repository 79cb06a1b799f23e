"""``evaluate`` stages: score heads on a held-out encode stage; keep every head's predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...errors import ConfigError
from ..context import StageContext
from ..kinds import Params, Role, kind_info, register_stage_kind

EVALUATION = "evaluation.json"


class EvaluateParams(Params):
    """``evaluate``: score heads (train / finetune stages) on a test encode stage."""

    primary_metric: Literal["accuracy", "balanced_accuracy", "macro_f1", "top_k_accuracy"] = (
        "accuracy"
    )


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


@register_stage_kind(
    "evaluate",
    version=1,
    params=EvaluateParams,
    inputs={
        "heads": Role(("head",), many=True),
        "test": Role(("encode",), required=False),
    },
    names_in_key=True,
    provides=("evaluation",),
    main_output="evaluation",
    describe=lambda p: f"ranked by {p.primary_metric}",
)
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
        score = kind_info(entry.kind).evaluate_entry
        if score is None:
            raise ConfigError(
                f"stage {ctx.name!r} (evaluate): {entry.name!r} ({entry.kind}) makes no head to score."
            )
        try:
            result, d = score(entry, test_store, rel, ctx.out, test_ids)
        except ConfigError as e:
            raise ConfigError(f"stage {ctx.name!r} (evaluate): {e}") from None
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
        # the majority-class baseline row (each head's evaluation computed one)
        baseline=next((r.baseline for r in results if r.baseline is not None), None),
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
