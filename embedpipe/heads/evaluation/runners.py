"""Running evaluations: a trained head on a held-out store, several heads cross-validated on
the same folds, and :func:`evaluate_predictions`, the one path from a head's predictions to a
:class:`HeadResult` (the ``finetune`` pipeline stage uses it too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...errors import ConfigError
from .._stores import (
    StoreLike,
    check_neighbors,
    load_xy,
    opened,
    require_classes,
    store_summary,
)
from .._stores import class_names as _store_class_names
from .metrics import (
    METRICS,
    classification_metrics,
    confusion,
    intervals,
    majority_class,
    per_class_report,
    score_matrix,
    widen,
)
from .report import EvaluationReport, HeadResult, stat

log = logging.getLogger(__name__)

#: Misclassified examples kept per head (most confident mistakes first).
MAX_ERRORS = 24
BASELINE = "majority class"


def _errors(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    names: Sequence[str],
    ids: Sequence[str] | None,
    inputs: Sequence[str] | None,
    limit: int,
) -> list[dict[str, Any]] | None:
    if ids is None and inputs is None:
        return None
    wrong = np.flatnonzero(y_true != y_pred)
    conf = None
    if scores is not None and scores.ndim == 2 and scores.shape[0] == y_true.size:
        conf = scores[np.arange(y_true.size), y_pred]
        wrong = wrong[np.argsort(-conf[wrong], kind="stable")]
    out = []
    for i in wrong[:limit].tolist():
        out.append(
            {
                "id": str(ids[i]) if ids is not None else str(i),
                "input": str(inputs[i]) if inputs is not None else None,
                "true": str(names[int(y_true[i])]),
                "predicted": str(names[int(y_pred[i])]),
                "score": None if conf is None else float(conf[i]),
            }
        )
    return out


def evaluate_predictions(
    name: str,
    head: Mapping[str, Any],
    y_true: Any,
    y_pred: Any,
    *,
    labels: Sequence[int] | np.ndarray,
    names: Sequence[str],
    scores: np.ndarray | None = None,
    fit_seconds: float | None = None,
    predict_seconds: float | None = None,
    ids: Sequence[str] | None = None,
    inputs: Sequence[str] | None = None,
    training_curve: list[dict[str, Any]] | None = None,
    top_k: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
    max_errors: int = MAX_ERRORS,
) -> HeadResult:
    """The holdout result of one head from its predictions on the test items.

    Parameters
    ----------
    name, head
        Display name and description (spec dict) of the head.
    y_true, y_pred
        True and predicted class indices.
    labels, names
        All class indices and their names.
    scores
        ``(n, n_classes)`` probabilities or decision values, for top-k accuracy and for
        ordering the misclassified examples.
    fit_seconds, predict_seconds
        Time spent; ``None`` for what this evaluation did not spend (a loaded head's fit).
    ids, inputs
        The test items' ids and what a person needs to recognise them (text, image path):
        the gallery of misclassified examples.
    training_curve
        Per-epoch history of a fine-tuning run.
    n_boot, seed
        Bootstrap resamples and seed of the 95% intervals of accuracy and macro-F1.

    Returns
    -------
    HeadResult

    Examples
    --------
    >>> r = evaluate_predictions("h", {"name": "h"}, [0, 1, 1, 0], [0, 1, 0, 0],
    ...                          labels=[0, 1], names=["cat", "dog"], inputs=list("abcd"))
    >>> r.mean("accuracy"), r.errors[0]["input"], r.errors[0]["true"]
    (0.75, 'c', 'dog')
    """
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    labels = np.asarray(labels)
    m = classification_metrics(y_true, y_pred, scores, labels=labels, top_k=top_k)
    return HeadResult(
        name=name,
        head=dict(head),
        scores={k: stat([m[k]]) for k in METRICS},
        fit_seconds=None if fit_seconds is None else stat([fit_seconds]),
        predict_seconds=None if predict_seconds is None else stat([predict_seconds]),
        per_class=per_class_report(y_true, y_pred, labels, names),
        confusion_matrix=confusion(y_true, y_pred, labels),
        intervals=intervals(y_true, y_pred, n_boot=n_boot, seed=seed) or None,
        errors=_errors(y_true, y_pred, scores, names, ids, inputs, max_errors),
        training_curve=training_curve,
    )


def baseline_result(
    majority: int,
    y_true: Any,
    *,
    labels: Sequence[int] | np.ndarray,
    names: Sequence[str],
    source: str = "training",
    n_boot: int = 1000,
    seed: int = 0,
) -> HeadResult:
    """The majority-class baseline: always predict class ``majority``.

    Examples
    --------
    >>> baseline_result(1, [1, 1, 0, 1], labels=[0, 1], names=["a", "b"]).mean("accuracy")
    0.75
    """
    y_true = np.asarray(y_true, np.int64)
    r = evaluate_predictions(
        BASELINE,
        {
            "name": "majority_class",
            "label": f"always {str(names[majority])!r}",
            "class": str(names[majority]),
            "from": source,
        },
        y_true,
        np.full_like(y_true, majority),
        labels=labels,
        names=names,
        n_boot=n_boot,
        seed=seed,
        max_errors=0,
    )
    r.errors = None
    return r


def holdout_report(
    results: list[HeadResult],
    data: dict[str, Any],
    protocol: dict[str, Any],
    *,
    baseline: HeadResult | None = None,
    ranking_metric: str = "accuracy",
) -> EvaluationReport:
    """An :class:`EvaluationReport` of holdout results (``kind="holdout"``)."""
    return EvaluationReport(
        "holdout", data, protocol, results, ranking_metric=ranking_metric, baseline=baseline
    )


def warn_if_trained_on(head: Any, fs: Any) -> None:
    """Warn when the held-out store holds the very rows the head was trained on (same file,
    or same dataset digest): its scores then measure memory, not generalisation."""
    trained_on = getattr(head, "trained_on", None) or {}
    same_path = trained_on.get("path") and str(trained_on["path"]) == str(fs.path)
    digest = trained_on.get("dataset_digest")
    if same_path or (digest and digest == getattr(fs, "dataset_digest", None)):
        log.warning(
            "the held-out store %s holds the rows the head was trained on: its scores measure "
            "memory, not accuracy on new data; evaluate on a store of other items (a test split)",
            fs.path,
        )


def evaluate_head(
    head: Any,
    store: StoreLike,
    *,
    top_k: int = 5,
    fit_seconds: float | None = None,
    n_boot: int = 1000,
    allow_incomplete: bool = False,
) -> EvaluationReport:
    """Evaluate a trained head on the labelled rows of a held-out store.

    The store must come from the head's backbone (else
    :class:`~embedpipe.errors.FingerprintMismatchError`).

    Parameters
    ----------
    head
        A :class:`~embedpipe.heads.TrainedHead`.
    store
        The held-out store.
    top_k
        ``k`` of the top-k accuracy.
    fit_seconds
        The fit time to show, when the caller spent it (``embedpipe train --eval``); a
        loaded head shows none (``-``), as this evaluation fitted nothing.
    n_boot
        Bootstrap resamples of the 95% intervals.

    Returns
    -------
    EvaluationReport
        ``kind="holdout"``, one result, the majority-class baseline (majority class of the
        head's training rows, or of the test rows for heads saved without class counts).

    Examples
    --------
    >>> from embedpipe.heads import train_head
    >>> from embedpipe.heads._examples import digits_store
    >>> _ = digits_store("train.h5", n=1200)
    >>> head = train_head("train.h5", "nearest_centroid")
    >>> report = evaluate_head(head, "train.h5")
    >>> report.best.mean("accuracy") > report.baseline.mean("accuracy")
    True
    """
    from .._stores import labelled_rows
    from ..spec import HeadSpec
    from ..trained import store_contents

    with opened(store, allow_incomplete) as fs:
        head.check_store(fs)
        warn_if_trained_on(head, fs)
        X, y = load_xy(fs)
        rows = labelled_rows(fs)
        ids = [str(i) for i in fs.ids[rows].tolist()]
        contents = store_contents(fs)
        inputs = [contents[i] for i in rows.tolist()]
        data = {**store_summary(fs), "classes": head.classes}
    labels = np.arange(len(head.classes))
    t0 = time.perf_counter()
    preds = head.predictions(X, ids)
    pred_s = time.perf_counter() - t0
    scores = preds.proba if preds.proba is not None else score_matrix(head.estimator, X)
    fitted = np.asarray(getattr(head.estimator, "classes_", labels))
    if scores is not None:
        scores = widen(scores, fitted, labels)
    spec = HeadSpec.coerce(head.spec)
    result = evaluate_predictions(
        spec.label,
        head.spec,
        y,
        preds.labels,
        labels=labels,
        names=head.classes,
        scores=scores,
        fit_seconds=fit_seconds,
        predict_seconds=pred_s,
        ids=ids,
        inputs=inputs,
        top_k=top_k,
        n_boot=n_boot,
    )
    counts = head.training.get("class_counts")
    if counts:
        baseline = baseline_result(
            int(np.argmax(counts)), y, labels=labels, names=head.classes, n_boot=n_boot
        )
    else:
        baseline = baseline_result(
            majority_class(y), y, labels=labels, names=head.classes, source="test", n_boot=n_boot
        )
    result.baseline = baseline
    return holdout_report(
        [result], data, {"train": head.trained_on, "top_k": top_k}, baseline=baseline
    )


def _as_estimators(heads: Any, random_state: int) -> list[tuple[str, dict[str, Any], Any]]:
    from sklearn.base import BaseEstimator

    from ..spec import HeadSpec

    if isinstance(heads, (str, HeadSpec)) or (
        isinstance(heads, Mapping) and ("name" in heads or "head" in heads)
    ):
        heads = [heads]
    items: list[tuple[str | None, Any]] = (
        list(heads.items()) if isinstance(heads, Mapping) else [(None, h) for h in heads]
    )
    out = []
    for name, h in items:
        if isinstance(h, BaseEstimator):
            label = name or type(h).__name__
            out.append((label, {"name": label, "estimator": repr(h)}, h))
            continue
        spec = HeadSpec.coerce(h)
        if not isinstance(h, HeadSpec) and not (isinstance(h, Mapping) and "random_state" in h):
            spec = HeadSpec(spec.name, spec.params, spec.preprocess, random_state)
        out.append((name or spec.label, spec.to_dict(), spec.build()))
    names = [n for n, _, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(
            f"two heads are both named {dup}; give them distinct names (pass a dict name -> head)."
        )
    if not out:
        raise ConfigError("no heads to evaluate; pass head names such as ['logreg', 'knn'].")
    return out


def _cv_result(
    name: str,
    head: dict[str, Any],
    fold_metrics: list[dict[str, float | None]],
    fit_s: list[float],
    pred_s: list[float],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
) -> HeadResult:
    return HeadResult(
        name=name,
        head=head,
        scores={m: stat([f[m] for f in fold_metrics]) for m in METRICS},
        fit_seconds=stat(fit_s) if fit_s else None,
        predict_seconds=stat(pred_s),
        per_class=per_class_report(y_true, y_pred, labels, names),
        confusion_matrix=confusion(y_true, y_pred, labels),
    )


def cross_validate_heads(
    heads: Any,
    data: StoreLike | tuple[np.ndarray, np.ndarray],
    *,
    cv: int = 5,
    random_state: int = 0,
    top_k: int = 5,
    ranking_metric: str = "accuracy",
    class_names: Sequence[str] | None = None,
    allow_incomplete: bool = False,
) -> EvaluationReport:
    """Cross-validate several heads on the same features and folds.

    Parameters
    ----------
    heads
        Head names, :class:`HeadSpec`\\ s, spec dicts or unfitted sklearn estimators; a list,
        or a dict ``{display name: head}``. Each spec gets ``random_state`` unless it sets one.
    data
        A feature store (path or :class:`~embedpipe.store.FeatureStore`; its labelled rows
        are used) or an ``(X, y)`` pair.
    cv
        Number of folds (stratified when every class has at least ``cv`` rows).
    random_state
        Seed of the fold shuffle and of the heads.
    top_k
        ``k`` of the top-k accuracy.
    ranking_metric
        Metric that orders the results (``best`` is the first).
    class_names
        Class names for ``(X, y)`` data (default: the labels as text).

    Returns
    -------
    EvaluationReport
        ``kind="cross_validation"``; ``print(report)`` shows the comparison table (the
        majority class of each training fold as the baseline row), ``report.to_json(path)``
        writes it.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> report = cross_validate_heads(["logreg", "knn"], load_digits(return_X_y=True), cv=3)
    >>> report.best.mean("accuracy") > 0.9 > report.baseline.mean("accuracy")
    True
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    if ranking_metric not in METRICS:
        raise ConfigError(f"ranking_metric {ranking_metric!r} is not one of {list(METRICS)}.")
    if not isinstance(cv, int) or cv < 2:
        raise ConfigError(f"cv={cv!r}: use an integer number of folds >= 2.")
    if isinstance(data, tuple):
        X, y = np.asarray(data[0]), np.asarray(data[1])
        labels = np.unique(y)
        names = list(class_names) if class_names is not None else [str(v) for v in labels]
        summary: dict[str, Any] = {
            "path": None,
            "fingerprint": None,
            "backbone": None,
            "dataset_digest": None,
            "n_rows": int(X.shape[0]),
            "n_features": int(X.shape[1]),
        }
    else:
        with opened(data, allow_incomplete) as fs:
            X, y = load_xy(fs)
            names = _store_class_names(fs, y)
            summary = store_summary(fs)
        labels = np.arange(len(names))
    summary["classes"] = names
    counts = np.bincount(np.searchsorted(labels, y), minlength=labels.size)
    if X.shape[0] < cv:
        raise ConfigError(f"cannot run {cv}-fold cross-validation on {X.shape[0]} rows; lower cv.")
    stratified = bool(counts[counts > 0].min() >= cv)
    splitter = (
        StratifiedKFold(cv, shuffle=True, random_state=random_state)
        if stratified
        else KFold(cv, shuffle=True, random_state=random_state)
    )
    folds = list(splitter.split(X, y))
    where = repr(summary["path"]) if summary.get("path") else "the data"
    require_classes(y, where, list(names))
    smallest = min(len(tr) for tr, _ in folds)
    results = []
    for name, spec_dict, est in _as_estimators(heads, random_state):
        check_neighbors(
            est, smallest, name, f"the smallest training fold of {cv}-fold cross-validation"
        )
        fold_metrics, fit_s, pred_s = [], [], []
        oof = np.empty_like(y)
        for tr, te in folds:
            model = clone(est)
            t0 = time.perf_counter()
            model.fit(X[tr], y[tr])
            t1 = time.perf_counter()
            y_pred = model.predict(X[te])
            t2 = time.perf_counter()
            scores = score_matrix(model, X[te])
            if scores is not None:
                scores = widen(scores, np.asarray(model.classes_), labels)
            oof[te] = y_pred
            fold_metrics.append(
                classification_metrics(y[te], y_pred, scores, labels=labels, top_k=top_k)
            )
            fit_s.append(t1 - t0)
            pred_s.append(t2 - t1)
        results.append(
            _cv_result(name, spec_dict, fold_metrics, fit_s, pred_s, y, oof, labels, names)
        )
    # the baseline: each fold predicts the majority class of its training rows
    base_metrics, base_oof = [], np.empty_like(y)
    for tr, te in folds:
        vals, n = np.unique(y[tr], return_counts=True)
        base_oof[te] = vals[int(np.argmax(n))]
        base_metrics.append(
            classification_metrics(y[te], base_oof[te], None, labels=labels, top_k=top_k)
        )
    baseline = _cv_result(
        BASELINE,
        {"name": "majority_class", "from": "training folds"},
        base_metrics,
        [],
        [0.0] * len(folds),
        y,
        base_oof,
        labels,
        names,
    )
    baseline.predict_seconds = None
    protocol = {
        "cv": cv,
        "shuffle": True,
        "stratified": stratified,
        "random_state": random_state,
        "top_k": top_k,
    }
    return EvaluationReport(
        "cross_validation",
        summary,
        protocol,
        results,
        ranking_metric=ranking_metric,
        baseline=baseline,
    )
