"""Classification metrics of a head's predictions: the figures every evaluation reports.

Examples
--------
>>> classification_metrics([0, 1, 1], [0, 1, 0])["accuracy"]
0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "top_k_accuracy")


def score_matrix(estimator: Any, X: np.ndarray) -> np.ndarray | None:
    """Scores for top-k accuracy: probabilities, else decision values, else ``None``.

    Examples
    --------
    >>> from sklearn.linear_model import RidgeClassifier
    >>> X, y = np.eye(3), np.arange(3)
    >>> score_matrix(RidgeClassifier().fit(X, y), X).shape
    (3, 3)
    """
    from ..trained import _scores

    proba, decision = _scores(estimator, X)
    return proba if proba is not None else decision


def widen(scores: np.ndarray, fitted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Scores over the classes a model saw → columns for all ``labels`` (unseen ones lowest).

    Examples
    --------
    >>> widen(np.array([[0.2, 0.8]]), np.array([0, 2]), np.arange(3))
    array([[ 0.2, -0.8,  0.8]])
    """
    if scores.ndim != 2 or scores.shape[1] == labels.size:
        return scores
    full = np.full((scores.shape[0], labels.size), float(scores.min()) - 1.0)
    full[:, np.searchsorted(labels, fitted)] = scores
    return full


def _top_k(
    y_true: np.ndarray, scores: np.ndarray | None, labels: np.ndarray, k: int
) -> float | None:
    from sklearn.metrics import top_k_accuracy_score

    if scores is None or k >= labels.size:
        return None
    if scores.ndim == 2 and scores.shape[1] != labels.size:
        return None
    return float(top_k_accuracy_score(y_true, scores, k=k, labels=labels))


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    scores: np.ndarray | None = None,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    top_k: int = 5,
) -> dict[str, float | None]:
    """Accuracy, balanced accuracy, macro F1 and top-k accuracy.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels.
    scores
        ``(n, n_classes)`` probabilities or decision values (columns in ``labels`` order),
        or binary decision values ``(n,)``; without them top-k accuracy is ``None``.
    labels
        All class labels (default: those in ``y_true`` and ``y_pred``).
    top_k
        ``k`` of the top-k accuracy; ``None`` when ``k >= n_classes`` (it would be 1).

    Returns
    -------
    dict
        ``{"accuracy", "balanced_accuracy", "macro_f1", "top_k_accuracy"}``.

    Examples
    --------
    >>> classification_metrics([0, 1, 1], [0, 1, 0])["macro_f1"]
    0.6666666666666666
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labs = np.unique(np.concatenate([y_true, y_pred])) if labels is None else np.asarray(labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labs, average="macro", zero_division=0)),
        "top_k_accuracy": _top_k(y_true, scores, labs, top_k),
    }


def per_class_report(
    y_true: Any, y_pred: Any, labels: Sequence[int] | np.ndarray, names: Sequence[str]
) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each class.

    Examples
    --------
    >>> per_class_report([0, 1, 1], [0, 1, 0], [0, 1], ["neg", "pos"])[1]["recall"]
    0.5
    """
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=np.asarray(labels), zero_division=0
    )
    return [
        {
            "class": str(n),
            "precision": float(pi),
            "recall": float(ri),
            "f1": float(fi),
            "support": int(si),
        }
        for n, pi, ri, fi, si in zip(names, p, r, f, s, strict=True)
    ]


def confusion(y_true: Any, y_pred: Any, labels: Sequence[int] | np.ndarray) -> list[list[int]]:
    """The confusion matrix (rows: true class, columns: predicted) as nested lists.

    Examples
    --------
    >>> confusion([0, 1, 1], [0, 1, 0], [0, 1])
    [[1, 0], [1, 1]]
    """
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=np.asarray(labels)).tolist()  # type: ignore[no-any-return]


def intervals(
    y_true: Any, y_pred: Any, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """Percentile-bootstrap 95% intervals of accuracy and macro-F1 over the scored items.

    Examples
    --------
    >>> y = np.arange(100) % 2
    >>> intervals(y, y)
    {'accuracy': [1.0, 1.0], 'macro_f1': [1.0, 1.0]}
    """
    from ..leaderboard import bootstrap_intervals

    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.size == 0:
        return {}
    ci = bootstrap_intervals(y_true, y_pred, n_boot=n_boot, seed=seed)
    return {k: [float(v[0]), float(v[1])] for k, v in ci.items()}


def majority_class(y_train: Any) -> int:
    """The most frequent label (ties: the smallest), what the baseline always predicts.

    Examples
    --------
    >>> majority_class([2, 1, 1, 2, 0])
    1
    """
    y = np.asarray(y_train, np.int64)
    return int(np.bincount(y[y >= 0]).argmax())
