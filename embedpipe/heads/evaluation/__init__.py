"""Evaluating heads: metrics (:mod:`.metrics`), the report model (:mod:`.report`) and the
runners (:mod:`.runners`: held-out evaluation, cross-validation of several heads at once, and
:func:`evaluate_predictions`, the one path from predictions to a result).

Results are an :class:`EvaluationReport`, printed as a comparison table and written as JSON
in the format below (``schema: "embedpipe.evaluation/1"``), which the report stage reads::

    {
      "schema": "embedpipe.evaluation/1",
      "kind": "cross_validation" | "holdout",
      "created": "2026-01-01T00:00:00+00:00",
      "versions": {"embedpipe": "...", "sklearn": "...", ...},
      "data": {                          # the features evaluated on
        "path": "...", "fingerprint": "...", "backbone": {...}, "dataset_digest": "...",
        "n_rows": 1797, "n_features": 1280, "classes": ["0", "1", ...]
      },
      "protocol": {                      # how the scores were obtained
        "cv": 5, "shuffle": true, "stratified": true, "random_state": 0,   # cross_validation
        "train": {...trained_on of the head...},                           # holdout
        "top_k": 5
      },
      "metrics": ["accuracy", "balanced_accuracy", "macro_f1", "top_k_accuracy"],
      "ranking_metric": "accuracy",
      "best": "logreg+standardize",
      "results": [                       # one per head, best first
        {
          "name": "logreg+standardize",
          "head": {"name": "logreg", "params": {}, "preprocess": ["standardize"], "random_state": 0},
          "scores": {                    # per metric: mean, std and the value of each fold
            "accuracy": {"mean": 0.95, "std": 0.01, "folds": [0.94, ...]},
            "top_k_accuracy": null,      # null: not applicable (k >= number of classes,
            ...                          #       or the head gives no scores)
          },
          "fit_seconds": {"mean": ..., "std": ..., "folds": [...]},
          "predict_seconds": {"mean": ..., "std": ..., "folds": [...]},
          "per_class": [{"class": "0", "precision": 1.0, "recall": 0.98, "f1": 0.99, "support": 178}, ...],
          "confusion_matrix": [[...], ...],  # rows: true class, columns: predicted, in data.classes order
          # holdout only (absent in cross-validation):
          "intervals": {"accuracy": [0.93, 0.97], "macro_f1": [0.92, 0.96]},  # bootstrap 95%
          "errors": [{"id": "...", "input": "text or image path", "true": "cat",
                      "predicted": "dog", "score": 0.91}, ...],  # misclassified, most confident first
          "training_curve": [{"epoch": 1, "train_loss": ..., ...}, ...]   # fine-tuning only
        }
      ],
      "baseline": {...a result of the same shape: always the majority training class...}
    }

A holdout evaluation has one fold (``std`` 0). In cross-validation, ``per_class`` and
``confusion_matrix`` are computed from the out-of-fold predictions of every row.
"""

from __future__ import annotations

from .metrics import METRICS, classification_metrics, confusion, majority_class, per_class_report
from .report import SCHEMA, EvaluationReport, HeadResult, stat
from .runners import (
    BASELINE,
    baseline_result,
    cross_validate_heads,
    evaluate_head,
    evaluate_predictions,
    holdout_report,
)

__all__ = [
    "BASELINE",
    "METRICS",
    "SCHEMA",
    "EvaluationReport",
    "HeadResult",
    "baseline_result",
    "classification_metrics",
    "confusion",
    "cross_validate_heads",
    "evaluate_head",
    "evaluate_predictions",
    "holdout_report",
    "majority_class",
    "per_class_report",
    "stat",
]
