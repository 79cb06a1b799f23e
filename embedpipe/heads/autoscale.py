"""``preprocess="auto"`` (the default): the heads' preprocessing chosen from the features.

Measured on bundled data (benchmarks/preprocess_default.py): on L2-normalised embeddings
(MiniLM, any ``normalize=True`` backbone) standardising costs accuracy (Rotten Tomatoes /
MiniLM, logistic regression: 0.747 plain, 0.730 standardised; 20 Newsgroups in issue 27:
0.788 against 0.737), while on unnormalised CNN features it helps or is needed for the solver
to converge (digits / MobileNetV2: 0.936 standardised, 0.920 plain, and a 14x slower fit).
So: rows of unit L2 norm are left as they are, others are standardised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted


class AutoScaler(TransformerMixin, BaseEstimator):
    """Leave L2-normalised rows as they are, standardise other features.

    Parameters
    ----------
    atol
        How far from 1 a row's L2 norm may be for the rows to count as normalised.

    Attributes
    ----------
    chosen_ : str
        ``"none"`` (every row seen had unit norm) or ``"standardize"``.
    scaler_ : StandardScaler
        Fitted on the same rows (used when ``chosen_`` is ``"standardize"``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 4))
    >>> AutoScaler().fit(X / np.linalg.norm(X, axis=1, keepdims=True)).chosen_
    'none'
    >>> AutoScaler().fit(X * 10).chosen_
    'standardize'
    """

    def __init__(self, atol: float = 1e-3) -> None:
        self.atol = atol

    def fit(self, X: Any, y: Any = None) -> AutoScaler:
        """Choose from ``X``'s row norms and fit the scaler; returns self."""
        for name in ("chosen_", "scaler_", "n_features_in_"):
            self.__dict__.pop(name, None)
        return self.partial_fit(X)

    def partial_fit(self, X: Any, y: Any = None) -> AutoScaler:
        """Update the choice and the scaler with one batch (out-of-core training)."""
        X = check_array(X, dtype=(np.float64, np.float32))
        norms = np.linalg.norm(X, axis=1)
        unit = bool(np.all(np.abs(norms - 1.0) <= self.atol))
        if not hasattr(self, "scaler_"):
            self.scaler_ = StandardScaler()
            self.n_features_in_ = X.shape[1]
            self.chosen_ = "none"
        self.scaler_.partial_fit(X)
        if not unit:
            self.chosen_ = "standardize"
        return self

    def transform(self, X: Any) -> Any:
        """``X`` unchanged, or standardised (see ``chosen_``)."""
        check_is_fitted(self, "chosen_")
        X = check_array(X, dtype=(np.float64, np.float32))
        return X if self.chosen_ == "none" else self.scaler_.transform(X)


def chosen_preprocessing(model: Any) -> str | None:
    """What an ``auto`` step of a fitted head pipeline chose (``None`` without one).

    Examples
    --------
    >>> from sklearn.pipeline import Pipeline
    >>> chosen_preprocessing(Pipeline([("auto", AutoScaler().fit(np.eye(3)))]))
    'none'
    """
    steps = getattr(model, "named_steps", {})
    step = steps.get("auto") if hasattr(steps, "get") else None
    return getattr(step, "chosen_", None)
