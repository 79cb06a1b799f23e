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

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "EvaluationReport": "embedpipe.heads.evaluation",
    "HeadResult": "embedpipe.heads.evaluation",
    "classification_metrics": "embedpipe.heads.evaluation",
    "cross_validate_heads": "embedpipe.heads.evaluation",
    "evaluate_head": "embedpipe.heads.evaluation",
    "evaluate_predictions": "embedpipe.heads.evaluation",
    "per_class_report": "embedpipe.heads.evaluation",
    "FineTunedModel": "embedpipe.heads.finetuning",
    "FineTuneResult": "embedpipe.heads.finetuning",
    "SplitBackbone": "embedpipe.heads.finetuning",
    "cache_activations": "embedpipe.heads.finetuning",
    "finetune": "embedpipe.heads.finetuning",
    "load_finetuned": "embedpipe.heads.finetuning",
    "split_backbone": "embedpipe.heads.finetuning",
    "FaissKNNClassifier": "embedpipe.heads.knn",
    "fit_out_of_core": "embedpipe.heads.outofcore",
    "predict_items": "embedpipe.heads.predict",
    "HEADS": "embedpipe.heads.registry",
    "HeadSpec": "embedpipe.heads.spec",
    "describe_heads": "embedpipe.heads.registry",
    "list_heads": "embedpipe.heads.registry",
    "make_head": "embedpipe.heads.spec",
    "register_head": "embedpipe.heads.registry",
    "validate_head_params": "embedpipe.heads.spec",
    "parse_param": "embedpipe.heads.params",
    "parse_preprocess": "embedpipe.heads.preprocess",
    "TorchHeadClassifier": "embedpipe.heads.torch_head",
    "Predictions": "embedpipe.heads.trained",
    "TrainedHead": "embedpipe.heads.trained",
    "load_head": "embedpipe.heads.trained",
    "train_head": "embedpipe.heads.trained",
    "Embedder": "embedpipe.heads.embedder",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
