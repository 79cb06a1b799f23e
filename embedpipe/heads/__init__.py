"""Heads on cached features: sklearn heads by name, a FAISS kNN classifier, torch heads,
out-of-core training, shallow fine-tuning and evaluation.

The public names are imported lazily, so listing heads (``embedpipe heads``) imports neither
scikit-learn's estimators nor torch.

Examples
--------
>>> from embedpipe.heads import cross_validate_heads
>>> from sklearn.datasets import load_digits
>>> report = cross_validate_heads(["logreg", "nearest_centroid"], load_digits(return_X_y=True), cv=3)
>>> print(report.table().splitlines()[0].split())
['head', 'accuracy', 'bal.', 'acc', 'macro', 'F1', 'top-5', 'fit', 's', 'predict', 's']
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "EvaluationReport": "embedpipe.heads.evaluation",
    "HeadResult": "embedpipe.heads.evaluation",
    "classification_metrics": "embedpipe.heads.evaluation",
    "cross_validate_heads": "embedpipe.heads.evaluation",
    "evaluate_head": "embedpipe.heads.evaluation",
    "evaluate_predictions": "embedpipe.heads.evaluation",
    "per_class_report": "embedpipe.heads.evaluation",
    "FineTunedModel": "embedpipe.heads.finetune",
    "FineTuneResult": "embedpipe.heads.finetune",
    "SplitBackbone": "embedpipe.heads.finetune",
    "cache_activations": "embedpipe.heads.finetune",
    "finetune": "embedpipe.heads.finetune",
    "load_finetuned": "embedpipe.heads.finetune",
    "split_backbone": "embedpipe.heads.finetune",
    "FaissKNNClassifier": "embedpipe.heads.knn",
    "fit_out_of_core": "embedpipe.heads.outofcore",
    "predict_items": "embedpipe.heads.predict",
    "HEADS": "embedpipe.heads.registry",
    "HeadSpec": "embedpipe.heads.registry",
    "describe_heads": "embedpipe.heads.registry",
    "list_heads": "embedpipe.heads.registry",
    "make_head": "embedpipe.heads.registry",
    "register_head": "embedpipe.heads.registry",
    "validate_head_params": "embedpipe.heads.registry",
    "TorchHeadClassifier": "embedpipe.heads.torch_head",
    "Predictions": "embedpipe.heads.trained",
    "TrainedHead": "embedpipe.heads.trained",
    "load_head": "embedpipe.heads.trained",
    "train_head": "embedpipe.heads.trained",
    "Embedder": "embedpipe.heads.embedder",
}

__all__ = sorted(_EXPORTS)


class _HeadsModule(types.ModuleType):
    """``embedpipe.heads.finetune`` is both a subpackage and its main function: importing the
    subpackage sets the package attribute to the module, so keep the function there, as an
    eager ``from .finetune import finetune`` did."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "finetune" and isinstance(value, types.ModuleType) and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _HeadsModule


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
