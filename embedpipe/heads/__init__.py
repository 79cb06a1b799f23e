"""Heads on cached features: sklearn heads by name, a FAISS kNN classifier, torch heads,
out-of-core training, shallow fine-tuning and evaluation.

Examples
--------
>>> from embedpipe.heads import cross_validate_heads
>>> from sklearn.datasets import load_digits
>>> report = cross_validate_heads(["logreg", "knn"], load_digits(return_X_y=True), cv=3)
>>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

from .evaluation import (
    EvaluationReport,
    HeadResult,
    classification_metrics,
    cross_validate_heads,
    evaluate_head,
    per_class_report,
)
from .finetune import (
    FineTunedModel,
    FineTuneResult,
    SplitBackbone,
    cache_activations,
    finetune,
    load_finetuned,
    split_backbone,
)
from .knn import FaissKNNClassifier
from .outofcore import fit_out_of_core
from .predict import predict_items
from .registry import HeadSpec, describe_heads, list_heads, make_head, register_head
from .torch_head import TorchHeadClassifier
from .trained import Predictions, TrainedHead, load_head, train_head

__all__ = [
    "EvaluationReport",
    "FaissKNNClassifier",
    "FineTuneResult",
    "FineTunedModel",
    "HeadResult",
    "HeadSpec",
    "Predictions",
    "SplitBackbone",
    "TorchHeadClassifier",
    "TrainedHead",
    "cache_activations",
    "classification_metrics",
    "cross_validate_heads",
    "describe_heads",
    "evaluate_head",
    "finetune",
    "fit_out_of_core",
    "list_heads",
    "load_finetuned",
    "load_head",
    "make_head",
    "per_class_report",
    "predict_items",
    "register_head",
    "split_backbone",
    "train_head",
]
