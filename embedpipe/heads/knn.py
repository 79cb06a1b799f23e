"""A k-nearest-neighbours classifier on a FAISS index, as a scikit-learn estimator."""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar, Literal

import faiss
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .params import fit_inputs, validate_estimator_params

Metric = Literal["cosine", "l2"]
IndexKind = Literal["flat", "ivf", "hnsw"]
_METRICS = ("cosine", "l2")
_INDEXES = ("flat", "ivf", "hnsw")
_WEIGHTS = ("uniform", "distance")


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """L2-normalise rows; zero rows stay zero (as in :func:`sklearn.preprocessing.normalize`)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(X / norms, dtype=np.float32)


class FaissKNNClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbours classification backed by a FAISS index.

    A drop-in for :class:`sklearn.neighbors.KNeighborsClassifier` (``algorithm='brute'``) on
    dense float features: with ``index='flat'`` its predictions are the same (ties in distance
    aside), many times faster on large stores. ``'ivf'`` and ``'hnsw'`` trade exactness for
    speed on very large training sets.

    Parameters
    ----------
    n_neighbors
        Number of neighbours that vote.
    metric
        ``"cosine"`` (distance ``1 - cos``) or ``"l2"`` (Euclidean distance).
    weights
        ``"uniform"``: each neighbour votes once. ``"distance"``: votes weighted by
        ``1 / distance`` (a neighbour at distance 0 takes the whole vote, as in scikit-learn).
    index
        ``"flat"`` (exact), ``"ivf"`` (inverted lists, approximate) or ``"hnsw"`` (graph,
        approximate).
    nlist
        IVF cells; ``None`` picks ``4 * sqrt(n_samples)`` (at most ``n_samples // 39``).
    nprobe
        IVF cells visited per query.
    hnsw_m, ef_search
        HNSW graph degree and search breadth.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    n_samples_fit_ : int
    index_ : faiss.Index
        The fitted index (serialised to bytes when pickled).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> knn = FaissKNNClassifier(n_neighbors=3, metric="l2").fit(X[:1500], y[:1500])
    >>> round(knn.score(X[1500:], y[1500:]), 2) > 0.95
    True
    """

    #: scikit-learn's own parameter constraints (checked by :meth:`fit` and by
    #: :func:`embedpipe.heads.validate_head_params` before anything runs).
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions(set(_METRICS))],
        "weights": [StrOptions(set(_WEIGHTS))],
        "index": [StrOptions(set(_INDEXES))],
        "nlist": [Interval(Integral, 1, None, closed="left"), None],
        "nprobe": [Interval(Integral, 1, None, closed="left")],
        "hnsw_m": [Interval(Integral, 1, None, closed="left")],
        "ef_search": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_neighbors: int = 5,
        metric: Metric = "cosine",
        weights: Literal["uniform", "distance"] = "uniform",
        index: IndexKind = "flat",
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.weights = weights
        self.index = index
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search

    # ---- fitting ------------------------------------------------------------------------
    def _check_params(self) -> None:
        validate_estimator_params(self)

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return _unit_rows(X)
        return np.ascontiguousarray(X, dtype=np.float32)

    def _build_index(self, Xp: np.ndarray) -> faiss.Index:
        """Build the index through the index-type registry (:mod:`embedpipe.index.kinds`)."""
        from ..index.kinds import INDEX_TYPES

        n, d = Xp.shape
        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        kind = INDEX_TYPES.get(self.index)
        options: dict[str, Any] = {"m": int(self.hnsw_m)}
        if kind.search_param is not None and kind.search_param.name == "nprobe":
            nlist = self.nlist if self.nlist is not None else int(4 * np.sqrt(n))
            options["nlist"] = int(max(1, min(nlist, n // 39 if n >= 39 else 1)))
        index = kind.new_index(d, faiss_metric, n, **options)
        if not index.is_trained:
            index.train(Xp)
        index.add(Xp)
        knob = kind.search_param
        wanted = {"nprobe": self.nprobe, "efSearch": self.ef_search}.get(knob.name if knob else "")
        if knob is not None and wanted is not None:
            knob.set(index, knob.clip(index, int(wanted)))
        try:  # lets kneighbors(X=None) give back the training vectors
            faiss.extract_index_ivf(index).make_direct_map()
        except RuntimeError:
            pass
        return index

    def fit(self, X: Any, y: Any) -> FaissKNNClassifier:
        """Index the training features ``X`` ``(n_samples, n_features)`` labelled ``y``;
        returns ``self``."""
        X, self._y = fit_inputs(self, X, y, [np.float32, np.float64])
        self.n_samples_fit_ = X.shape[0]
        self.index_ = self._build_index(self._prepare(X))
        return self

    # ---- neighbours ---------------------------------------------------------------------
    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, ind = self.index_.search(Q, k)
        if self.metric == "cosine":
            dist = np.clip(1.0 - sims, 0.0, 2.0)
        else:
            dist = np.sqrt(np.maximum(sims, 0.0))
        return dist, ind

    def kneighbors(
        self, X: Any = None, n_neighbors: int | None = None, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Find the nearest training rows of each query (as in scikit-learn).

        With ``X=None`` the queries are the training rows, and a row is not its own neighbour.

        Returns
        -------
        distances : ndarray of shape (n_queries, n_neighbors)
            Only when ``return_distance``; cosine or Euclidean distances, ascending.
        indices : ndarray of shape (n_queries, n_neighbors)
        """
        check_is_fitted(self)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_neighbors must be an int >= 1, got {k!r}.")
        query_is_train = X is None
        if query_is_train:
            Q = self.index_.reconstruct_n(0, self.n_samples_fit_)
            k += 1
        else:
            X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
            Q = self._prepare(X)
        if k > self.n_samples_fit_:
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {k}, "
                f"n_samples_fit = {self.n_samples_fit_}, n_samples = {Q.shape[0]}"
            )
        dist, ind = self._search(Q, k)
        if (ind < 0).any():  # an approximate index returned fewer than k hits
            raise RuntimeError(
                f"the {self.index!r} index found fewer than {k} neighbours for some queries; "
                "raise nprobe / ef_search or use index='flat'."
            )
        if query_is_train:
            n = Q.shape[0]
            sample_mask = ind != np.arange(n)[:, None]
            # a row with duplicates may not list itself first: drop the first hit instead
            sample_mask[:, 0][np.all(sample_mask, axis=1)] = False
            ind = ind[sample_mask].reshape(n, k - 1)
            dist = dist[sample_mask].reshape(n, k - 1)
        ind = ind.astype(np.intp, copy=False)
        return (dist.astype(np.float64), ind) if return_distance else ind

    # ---- prediction ---------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: the (weighted) share of each class among the neighbours.

        Returns
        -------
        ndarray of shape (n_queries, n_classes), columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        dist, ind = self.kneighbors(X)
        n = ind.shape[0]
        if self.weights == "distance":
            with np.errstate(divide="ignore"):
                w = 1.0 / dist
            inf_mask = np.isinf(w)
            inf_row = inf_mask.any(axis=1)
            w[inf_row] = inf_mask[inf_row]
        else:
            w = np.ones_like(dist)
        proba = np.zeros((n, self.classes_.size), dtype=np.float64)
        np.add.at(proba, (np.repeat(np.arange(n), ind.shape[1]), self._y[ind].ravel()), w.ravel())
        total = proba.sum(axis=1, keepdims=True)
        total[total == 0.0] = 1.0
        return proba / total

    def predict(self, X: Any) -> np.ndarray:
        """The majority (or distance-weighted) class of the neighbours; ties go to the first class."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # ---- pickling (FAISS indexes are serialised to bytes) -------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if "index_" in state:
            state = dict(state)
            state["index_"] = faiss.serialize_index(state["index_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "index_" in state and isinstance(state["index_"], np.ndarray):
            state = dict(state)
            state["index_"] = faiss.deserialize_index(state["index_"])
            if hasattr(state["index_"], "nprobe"):
                # nprobe is a search-time field, not serialised by every faiss version
                state["index_"].nprobe = int(min(state.get("nprobe", 16), state["index_"].nlist))
        super().__setstate__(state)

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
