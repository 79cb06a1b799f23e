"""Label issues: out-of-fold probabilities from a cross-validated head, then confident
learning (cleanlab's ``find_label_issues`` when installed, the same rule built in otherwise)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import Arg, ConfigError
from .graph import KnnGraph

log = logging.getLogger(__name__)

Engine = Literal["auto", "cleanlab", "builtin"]


@dataclass
class LabelIssues:
    """Label-issue findings over the labelled rows.

    Attributes
    ----------
    rows
        Global rows checked (labelled ones, in classes with enough members).
    probs
        Out-of-fold probabilities ``[len(rows), n_classes]``.
    flagged
        Global rows whose label is likely wrong, most likely first.
    scores
        ``1 - p(given label)`` per flagged row.
    suggested
        The most probable class per flagged row.
    how
        The head, folds and engine used.
    """

    rows: np.ndarray
    probs: np.ndarray
    flagged: np.ndarray
    scores: np.ndarray
    suggested: np.ndarray
    how: str


def out_of_fold_probs(
    X: np.ndarray,
    y: np.ndarray,
    *,
    head: str = "logreg",
    params: Mapping[str, Any] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Each row's class probabilities from a head fitted on the other folds.

    ``y`` holds class numbers ``0..C-1`` (each with at least ``folds`` rows). A head without
    ``predict_proba`` gets a softmax of its decision function.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> out_of_fold_probs(X[:300], y[:300], folds=3).shape
    (300, 10)
    """
    from sklearn.model_selection import StratifiedKFold

    from ..heads import make_head

    n_classes = int(y.max()) + 1
    out = np.zeros((len(y), n_classes), np.float64)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(X, y):
        model = make_head(head, params, random_state=seed)
        model.fit(X[train], y[train])
        seen = np.asarray(model.classes_, dtype=np.int64)
        if hasattr(model, "predict_proba"):
            try:
                p = model.predict_proba(X[test])
            except AttributeError:  # e.g. an SVM without probability=True
                p = None
        else:
            p = None
        if p is None:
            dec = np.asarray(model.decision_function(X[test]), np.float64)
            if dec.ndim == 1:
                dec = np.stack([-dec, dec], axis=1)
            dec -= dec.max(axis=1, keepdims=True)
            p = np.exp(dec)
            p /= p.sum(axis=1, keepdims=True)
        out[np.ix_(test, seen)] = p
    return out


def confident_learning(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Rows whose given label is likely wrong, by confident learning (Northcutt et al. 2021):
    a row labelled ``i`` counts toward class ``j`` when ``p_j`` reaches class ``j``'s threshold
    (the mean ``p_j`` over rows labelled ``j``), taking the most probable such ``j``; rows
    counted off the diagonal are issues. Sorted by self-confidence, lowest first.

    Examples
    --------
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.95, 0.05]])
    >>> confident_learning(np.array([0, 0, 1, 1, 1]), p).tolist()
    [4]
    """
    n_classes = probs.shape[1]
    thresholds = np.array(
        [probs[labels == j, j].mean() if (labels == j).any() else np.inf for j in range(n_classes)]
    )
    above = probs >= thresholds[None, :] - 1e-9
    masked = np.where(above, probs, -1.0)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), labels)
    issues = np.flatnonzero(confident != labels)
    self_conf = probs[issues, labels[issues]]
    return issues[np.argsort(self_conf, kind="stable")]


def find_label_issues(
    X: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    *,
    head: str = "logreg",
    params: Mapping[str, Any] | None = None,
    folds: int = 5,
    engine: Engine = "auto",
    graph: KnnGraph | None = None,
    knn_weight: float = 0.0,
    seed: int = 0,
) -> LabelIssues:
    """Label issues among labelled rows.

    Parameters
    ----------
    X, labels
        Features and class numbers of the labelled rows.
    rows
        Their global row numbers (what the result reports).
    head, params
        Any registered head (:func:`embedpipe.heads.make_head`), cross-validated ``folds``
        times.
    engine
        ``cleanlab`` (``cleanlab.filter.find_label_issues``; the ``curate`` extra), ``builtin``
        (:func:`confident_learning`), or ``auto`` (cleanlab when installed).
    graph, knn_weight
        Blend ``knn_weight`` of a neighbour vote (the labels of each row's graph neighbours)
        into the head's probabilities (0: the head alone).
    """
    if engine not in ("auto", "cleanlab", "builtin"):
        known = "'auto', 'cleanlab' or 'builtin'"
        raise ConfigError(Arg("engine", engine), f" is not known; pass {known}.")
    if not 0.0 <= knn_weight <= 1.0:
        raise ConfigError(
            Arg("knn_weight", knn_weight),
            " is outside [0, 1]; pass e.g. ",
            Arg("knn_weight", 0.5),
            ".",
        )
    classes, y = np.unique(labels, return_inverse=True)
    counts = np.bincount(y)
    folds_used = int(min(folds, counts.min())) if len(counts) else 0
    if len(classes) < 2 or folds_used < 2:
        e = np.empty(0, np.int64)
        return LabelIssues(
            rows,
            np.zeros((len(rows), 0)),
            e,
            np.empty(0),
            e,
            "skipped: needs 2+ classes with 2+ labelled rows each",
        )
    probs = out_of_fold_probs(X, y, head=head, params=params, folds=folds_used, seed=seed)
    if graph is not None and knn_weight > 0:
        local = np.full(int(max(rows.max(), graph.rows.max())) + 1, -1, np.int64)
        local[rows] = np.arange(len(rows))
        nb = graph.rows[rows]
        nb_local = np.where(nb >= 0, local[np.maximum(nb, 0)], -1)
        vote = np.zeros_like(probs)
        for j in range(nb_local.shape[1]):
            ok = nb_local[:, j] >= 0
            vote[np.flatnonzero(ok), y[nb_local[ok, j]]] += 1.0
        total = vote.sum(axis=1, keepdims=True)
        vote = np.where(total > 0, vote / np.maximum(total, 1), probs)
        probs = (1 - knn_weight) * probs + knn_weight * vote
    use_cleanlab = engine == "cleanlab"
    if engine == "auto":
        try:
            import cleanlab  # noqa: F401

            use_cleanlab = True
        except ImportError:
            use_cleanlab = False
    if use_cleanlab:
        try:
            from cleanlab.filter import find_label_issues as cl_find
        except ImportError as e:
            raise ConfigError(
                Arg("engine", "cleanlab"),
                " needs cleanlab: pip install 'embedpipe[curate]' (or use ",
                Arg("engine", "builtin"),
                ").",
            ) from e
        local_issues = np.asarray(
            cl_find(y, probs, return_indices_ranked_by="self_confidence", n_jobs=1),
            dtype=np.int64,
        )
        how_engine = "cleanlab.filter.find_label_issues"
    else:
        local_issues = confident_learning(y, probs)
        how_engine = "built-in confident learning"
    scores = 1.0 - probs[local_issues, y[local_issues]]
    suggested = classes[probs[local_issues].argmax(axis=1)]
    how = f"out-of-fold probabilities of {head} ({folds_used} folds)"
    if knn_weight > 0 and graph is not None:
        how += f" blended with a {knn_weight:g} neighbour vote"
    how += f"; {how_engine}"
    return LabelIssues(rows, probs, rows[local_issues], scores, suggested, how)
