"""Evaluating heads: metrics, held-out evaluation, cross-validation of several heads at once.

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
          "confusion_matrix": [[...], ...]   # rows: true class, columns: predicted, in data.classes order
        }
      ]
    }

A holdout evaluation has one fold (``std`` 0). In cross-validation, ``per_class`` and
``confusion_matrix`` are computed from the out-of-fold predictions of every row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)
from sklearn.model_selection import KFold, StratifiedKFold

from ..errors import ConfigError
from ..store.format import library_versions
from ._stores import StoreLike, load_xy, opened, store_summary
from ._stores import class_names as _store_class_names
from .registry import HeadSpec
from .trained import TrainedHead, _scores

SCHEMA = "embedpipe.evaluation/1"
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "top_k_accuracy")
_HEADERS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "bal. acc",
    "macro_f1": "macro F1",
    "top_k_accuracy": "top-{k}",
}


# ---- metrics ------------------------------------------------------------------------------
def score_matrix(estimator: BaseEstimator, X: np.ndarray) -> np.ndarray | None:
    """Scores for top-k accuracy: probabilities, else decision values, else ``None``."""
    proba, decision = _scores(estimator, X)
    return proba if proba is not None else decision


def _top_k(
    y_true: np.ndarray, scores: np.ndarray | None, labels: np.ndarray, k: int
) -> float | None:
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
    >>> classification_metrics([0, 1, 1], [0, 1, 0])["accuracy"]
    0.6666666666666666
    """
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
    """Precision, recall, F1 and support of each class."""
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


# ---- report -------------------------------------------------------------------------------
def _stat(values: Sequence[float | None]) -> dict[str, Any] | None:
    if not values or any(v is None for v in values):
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "folds": [float(v) for v in arr]}


@dataclass
class HeadResult:
    """The evaluation of one head (one entry of ``EvaluationReport.results``)."""

    name: str
    head: dict[str, Any]
    scores: dict[str, dict[str, Any] | None]
    fit_seconds: dict[str, Any] | None
    predict_seconds: dict[str, Any] | None
    per_class: list[dict[str, Any]]
    confusion_matrix: list[list[int]]

    def mean(self, metric: str) -> float | None:
        s = self.scores.get(metric)
        return None if s is None else float(s["mean"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "head": self.head,
            "scores": self.scores,
            "fit_seconds": self.fit_seconds,
            "predict_seconds": self.predict_seconds,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion_matrix,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeadResult:
        return cls(
            **{
                k: d[k]
                for k in (
                    "name",
                    "head",
                    "scores",
                    "fit_seconds",
                    "predict_seconds",
                    "per_class",
                    "confusion_matrix",
                )
            }
        )


@dataclass
class EvaluationReport:
    """Scores of one or more heads on the same features (see the module doc for the JSON)."""

    kind: str
    data: dict[str, Any]
    protocol: dict[str, Any]
    results: list[HeadResult]
    ranking_metric: str = "accuracy"
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    versions: dict[str, str] = field(default_factory=library_versions)

    def __post_init__(self) -> None:
        self.results.sort(key=lambda r: -(r.mean(self.ranking_metric) or -np.inf))

    @property
    def best(self) -> HeadResult:
        """The head with the highest ``ranking_metric``."""
        return self.results[0]

    def result(self, name: str) -> HeadResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no head {name!r} in this report; heads: {[r.name for r in self.results]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "kind": self.kind,
            "created": self.created,
            "versions": self.versions,
            "data": self.data,
            "protocol": self.protocol,
            "metrics": self.metrics,
            "ranking_metric": self.ranking_metric,
            "best": self.best.name if self.results else None,
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationReport:
        if d.get("schema") != SCHEMA:
            raise ConfigError(
                f"not an embedpipe evaluation report (schema {d.get('schema')!r}, expected {SCHEMA!r})."
            )
        return cls(
            kind=d["kind"],
            data=d["data"],
            protocol=d["protocol"],
            results=[HeadResult.from_dict(r) for r in d["results"]],
            ranking_metric=d["ranking_metric"],
            metrics=list(d["metrics"]),
            created=d["created"],
            versions=d["versions"],
        )

    @classmethod
    def from_json(cls, path: str | Path) -> EvaluationReport:
        """Read a report written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def table(self) -> str:
        """A plain-text comparison table, best head first (mean ± std over folds)."""
        k = self.protocol.get("top_k", 5)
        cols = ["head", *(_HEADERS[m].format(k=k) for m in self.metrics), "fit s", "predict s"]
        rows = []
        for r in self.results:
            cells = [r.name]
            for m in self.metrics:
                s = r.scores.get(m)
                cells.append(
                    "-"
                    if s is None
                    else (
                        f"{s['mean']:.4f}" + (f" ± {s['std']:.4f}" if len(s["folds"]) > 1 else "")
                    )
                )
            for t in (r.fit_seconds, r.predict_seconds):
                cells.append("-" if t is None else f"{t['mean']:.3f}")
            rows.append(cells)
        widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows, strict=True)]

        def line(cells: list[str]) -> str:
            return "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        out = [line(cols), "  ".join("-" * w for w in widths), *(line(c) for c in rows)]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


# ---- evaluation ---------------------------------------------------------------------------
def _widen(scores: np.ndarray, fitted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Scores over the classes a model saw → columns for all ``labels`` (unseen ones lowest)."""
    if scores.ndim != 2 or scores.shape[1] == labels.size:
        return scores
    full = np.full((scores.shape[0], labels.size), float(scores.min()) - 1.0)
    full[:, np.searchsorted(labels, fitted)] = scores
    return full


def _head_result(
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
        scores={m: _stat([f[m] for f in fold_metrics]) for m in METRICS},
        fit_seconds=_stat(fit_s) if fit_s else None,
        predict_seconds=_stat(pred_s),
        per_class=per_class_report(y_true, y_pred, labels, names),
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    )


def evaluate_head(head: TrainedHead, store: StoreLike, *, top_k: int = 5) -> EvaluationReport:
    """Evaluate a trained head on the labelled rows of a held-out store.

    The store must come from the head's backbone (else
    :class:`~embedpipe.errors.FingerprintMismatchError`).

    Returns
    -------
    EvaluationReport
        ``kind="holdout"``, one result.
    """
    with opened(store) as fs:
        head.check_store(fs)
        X, y = load_xy(fs)
        data = {**store_summary(fs), "classes": head.classes}
    labels = np.arange(len(head.classes))
    t0 = time.perf_counter()
    preds = head.predictions(X, [str(i) for i in range(X.shape[0])])
    pred_s = time.perf_counter() - t0
    y_pred = preds.labels
    scores = preds.proba if preds.proba is not None else score_matrix(head.estimator, X)
    fitted = np.asarray(getattr(head.estimator, "classes_", labels))
    if scores is not None:
        scores = _widen(scores, fitted, labels)
    metrics = classification_metrics(y, y_pred, scores, labels=labels, top_k=top_k)
    spec = HeadSpec.coerce(head.spec)
    result = _head_result(
        spec.label,
        head.spec,
        [metrics],
        [head.training["fit_seconds"]] if "fit_seconds" in head.training else [],
        [pred_s],
        y,
        y_pred,
        labels,
        head.classes,
    )
    return EvaluationReport("holdout", data, {"train": head.trained_on, "top_k": top_k}, [result])


def _as_estimators(
    heads: Any, random_state: int
) -> list[tuple[str, dict[str, Any], BaseEstimator]]:
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


def cross_validate_heads(
    heads: Any,
    data: StoreLike | tuple[np.ndarray, np.ndarray],
    *,
    cv: int = 5,
    random_state: int = 0,
    top_k: int = 5,
    ranking_metric: str = "accuracy",
    class_names: Sequence[str] | None = None,
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
        ``kind="cross_validation"``; ``print(report)`` shows the comparison table,
        ``report.to_json(path)`` writes it.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> report = cross_validate_heads(["logreg", "knn"], load_digits(return_X_y=True), cv=3)
    >>> report.best.mean("accuracy") > 0.9
    True
    """
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
        with opened(data) as fs:
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
    results = []
    for name, spec_dict, est in _as_estimators(heads, random_state):
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
                scores = _widen(scores, np.asarray(model.classes_), labels)
            oof[te] = y_pred
            fold_metrics.append(
                classification_metrics(y[te], y_pred, scores, labels=labels, top_k=top_k)
            )
            fit_s.append(t1 - t0)
            pred_s.append(t2 - t1)
        results.append(
            _head_result(name, spec_dict, fold_metrics, fit_s, pred_s, y, oof, labels, names)
        )
    protocol = {
        "cv": cv,
        "shuffle": True,
        "stratified": stratified,
        "random_state": random_state,
        "top_k": top_k,
    }
    return EvaluationReport(
        "cross_validation", summary, protocol, results, ranking_metric=ranking_metric
    )
