"""Heads by name: a registry of classifiers and the feature preprocessing in front of them.

A head is a scikit-learn :class:`~sklearn.pipeline.Pipeline` of preprocessing steps
(``standardize``, ``l2``, ``pca``) and one classifier, described by a :class:`HeadSpec`
(name, parameters, preprocessing) that is what pipelines, saved heads and evaluation reports
record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import LinearSVC

from ..errors import ConfigError
from .knn import FaissKNNClassifier
from .torch_head import TorchHeadClassifier


@dataclass(frozen=True)
class HeadInfo:
    """A registered head: how to build it and what it is."""

    factory: Callable[..., BaseEstimator]
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)


HEADS: dict[str, HeadInfo] = {
    "logreg": HeadInfo(
        LogisticRegression, "multinomial logistic regression (lbfgs)", {"max_iter": 2000}
    ),
    "linear_svm": HeadInfo(
        LinearSVC, "linear support vector machine (liblinear)", {"max_iter": 5000}
    ),
    "ridge": HeadInfo(RidgeClassifier, "ridge regression on one-hot targets"),
    "sgd": HeadInfo(
        SGDClassifier,
        "linear model trained by SGD (log loss: has predict_proba; supports out-of-core partial_fit)",
        {"loss": "log_loss", "alpha": 1e-4, "max_iter": 50, "tol": 1e-4},
    ),
    "random_forest": HeadInfo(RandomForestClassifier, "random forest", {"n_estimators": 200}),
    "extra_trees": HeadInfo(
        ExtraTreesClassifier, "extremely randomised trees", {"n_estimators": 200}
    ),
    "hist_gb": HeadInfo(HistGradientBoostingClassifier, "histogram gradient boosting"),
    "nearest_centroid": HeadInfo(NearestCentroid, "nearest class mean"),
    "knn": HeadInfo(
        FaissKNNClassifier, "k-nearest neighbours on a FAISS index (cosine by default)"
    ),
    "torch_linear": HeadInfo(
        TorchHeadClassifier, "linear head in torch (AdamW, early stopping; partial_fit)"
    ),
    "torch_mlp": HeadInfo(
        TorchHeadClassifier,
        "one-hidden-layer MLP in torch (AdamW, early stopping; partial_fit)",
        {"hidden_sizes": (256,), "dropout": 0.1},
    ),
}

PREPROCESS_STEPS = ("standardize", "l2", "pca")
_ALIASES = {
    "standardise": "standardize",
    "scale": "standardize",
    "normalize": "l2",
    "normalise": "l2",
}


def list_heads() -> list[str]:
    """Names of the registered heads."""
    return sorted(HEADS)


def describe_heads() -> dict[str, str]:
    """``{name: one-line description}`` of the registered heads."""
    return {k: HEADS[k].description for k in list_heads()}


def register_head(
    name: str, factory: Callable[..., BaseEstimator], description: str, **defaults: Any
) -> None:
    """Add a head to the registry (``factory(**params)`` must return a sklearn classifier)."""
    HEADS[name] = HeadInfo(factory, description, defaults)


def parse_preprocess(preprocess: str | Sequence[str] | None) -> list[str]:
    """Normalise a preprocessing description into step tokens.

    Accepts ``None``/``"none"``, one string (``"standardize"``, ``"l2+pca:128"``,
    ``"l2,standardize"``) or a list of steps. ``pca`` takes an optional ``:N`` (components) or
    ``:0.95`` (explained variance).

    Raises
    ------
    ConfigError
        For an unknown step or a bad PCA size.
    """
    if preprocess is None:
        return []
    if isinstance(preprocess, str):
        parts = [p for chunk in preprocess.replace(",", "+").split("+") if (p := chunk.strip())]
    else:
        parts = [str(p).strip() for p in preprocess]
    out = []
    for p in parts:
        name, _, arg = p.partition(":")
        name = _ALIASES.get(name.lower(), name.lower())
        if name in ("none", ""):
            continue
        if name not in PREPROCESS_STEPS:
            raise ConfigError(
                f"unknown preprocessing step {p!r}; use {list(PREPROCESS_STEPS)} (e.g. 'standardize', 'l2+pca:128') or 'none'."
            )
        if name != "pca" and arg:
            raise ConfigError(f"preprocessing step {name!r} takes no argument (got {p!r}).")
        if name == "pca" and arg:
            _pca_components(arg, p)
        out.append(f"{name}:{arg}" if arg else name)
    return out


def _pca_components(arg: str, step: str) -> int | float:
    try:
        value = float(arg)
    except ValueError:
        raise ConfigError(
            f"bad PCA size in {step!r}: use pca:N (components) or pca:0.95 (variance kept)."
        ) from None
    if value >= 1:
        if value != int(value):
            raise ConfigError(f"bad PCA size in {step!r}: a component count must be an integer.")
        return int(value)
    if value <= 0:
        raise ConfigError(f"bad PCA size in {step!r}: it must be positive.")
    return value


def preprocess_steps(
    preprocess: str | Sequence[str] | None, random_state: int | None = 0
) -> list[tuple[str, BaseEstimator]]:
    """The sklearn transformers of a preprocessing description, as Pipeline steps."""
    steps: list[tuple[str, BaseEstimator]] = []
    for token in parse_preprocess(preprocess):
        name, _, arg = token.partition(":")
        if name == "standardize":
            steps.append(("standardize", StandardScaler()))
        elif name == "l2":
            steps.append(("l2", Normalizer(norm="l2")))
        else:
            n = _pca_components(arg, token) if arg else None
            steps.append(("pca", PCA(n_components=n, random_state=random_state)))
    return steps


def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``"key=value"`` (value read as YAML: ``0.5``, ``true``, ``[256, 128]``, ``balanced``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"bad head parameter {text!r}; write key=value, e.g. C=0.5 or hidden_sizes=[256]."
        )
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


@dataclass(frozen=True)
class HeadSpec:
    """What a head is: registry name, parameters, preprocessing, seed.

    Parameters
    ----------
    name
        A registered head (:func:`list_heads`).
    params
        Keyword arguments of the classifier (override the registry defaults).
    preprocess
        Preprocessing before the classifier (see :func:`parse_preprocess`).
    random_state
        Seed given to every step that takes one (PCA, SGD, forests, torch heads...) unless
        ``params`` sets it.

    Examples
    --------
    >>> [name for name, _ in HeadSpec("logreg", {"C": 0.5}, "standardize").build().steps]
    ['standardize', 'head']
    """

    name: str = "logreg"
    params: Mapping[str, Any] = field(default_factory=dict)
    preprocess: str | Sequence[str] | None = "standardize"
    random_state: int | None = 0

    @classmethod
    def coerce(cls, value: HeadSpec | str | Mapping[str, Any]) -> HeadSpec:
        """A spec from a spec, a name, or a dict with keys ``name``/``head``, ``params``, ``preprocess``, ``random_state``."""
        if isinstance(value, HeadSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            d = dict(value)
            if "head" in d and "name" not in d:
                d["name"] = d.pop("head")
            unknown = sorted(set(d) - {"name", "params", "preprocess", "random_state"})
            if unknown:
                raise ConfigError(
                    f"unknown head spec keys {unknown}; use name, params, preprocess, random_state."
                )
            return cls(**d)
        raise ConfigError(f"cannot read a head spec from {value!r}; pass a head name or a dict.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the preprocessing normalised to a list of steps)."""
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(self.params).items()}
        return {
            "name": self.name,
            "params": params,
            "preprocess": parse_preprocess(self.preprocess),
            "random_state": self.random_state,
        }

    def build_estimator(self) -> BaseEstimator:
        """The classifier alone (no preprocessing)."""
        info = HEADS.get(self.name)
        if info is None:
            raise ConfigError(
                f"unknown head {self.name!r}; registered heads: {', '.join(list_heads())}."
            )
        params = {**info.defaults, **dict(self.params)}
        est = info.factory()
        valid = est.get_params(deep=False)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(
                f"head {self.name!r} has no parameter(s) {unknown}; its parameters: {', '.join(sorted(valid))}."
            )
        if (
            "random_state" in valid
            and "random_state" not in params
            and self.random_state is not None
        ):
            params["random_state"] = self.random_state
        if "hidden_sizes" in params and isinstance(params["hidden_sizes"], list):
            params["hidden_sizes"] = tuple(params["hidden_sizes"])
        return est.set_params(**params)

    def build(self) -> Pipeline:
        """The unfitted head: ``Pipeline(preprocessing steps + [("head", classifier)])``."""
        return Pipeline(
            [
                *preprocess_steps(self.preprocess, self.random_state),
                ("head", self.build_estimator()),
            ]
        )

    @property
    def label(self) -> str:
        """A short display name, e.g. ``logreg[C=0.5]+standardize``."""
        params = ",".join(f"{k}={v}" for k, v in sorted(dict(self.params).items()))
        pre = "+".join(parse_preprocess(self.preprocess))
        return f"{self.name}{f'[{params}]' if params else ''}{f'+{pre}' if pre else ''}"


def make_head(
    name: str = "logreg",
    params: Mapping[str, Any] | None = None,
    preprocess: str | Sequence[str] | None = "standardize",
    random_state: int | None = 0,
) -> Pipeline:
    """Build an unfitted head by name.

    Parameters
    ----------
    name
        A registered head: ``logreg``, ``linear_svm``, ``ridge``, ``sgd``, ``random_forest``,
        ``extra_trees``, ``hist_gb``, ``nearest_centroid``, ``knn``, ``torch_linear``,
        ``torch_mlp`` (see :func:`describe_heads`).
    params
        Classifier parameters (override the registry defaults).
    preprocess
        ``"standardize"`` (default), ``"l2"``, ``"pca:N"``, combinations such as
        ``"l2+pca:128"``, or ``None``.
    random_state
        Seed for every step that takes one.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Preprocessing steps then a ``"head"`` step.

    Raises
    ------
    ConfigError
        Unknown head name (the message lists the registered ones), unknown parameter (lists
        the valid ones) or bad preprocessing step.

    Examples
    --------
    >>> make_head("knn", {"n_neighbors": 10}, preprocess="l2").steps[-1][1]
    FaissKNNClassifier(n_neighbors=10)
    """
    return HeadSpec(name, dict(params or {}), preprocess, random_state).build()
