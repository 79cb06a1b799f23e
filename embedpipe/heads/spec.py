"""What a head is (:class:`HeadSpec`: name, parameters, preprocessing, seed) and how it is
built into an unfitted scikit-learn Pipeline (:func:`make_head`).

A :class:`HeadSpec` is what pipelines, saved heads and evaluation reports record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..specs import split_options
from .params import coerce_params, set_checked_params
from .preprocess import parse_preprocess, preprocess_steps
from .registry import head_info

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline


def validate_head_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a head's parameters with scikit-learn's own constraints, before anything runs.

    Parameters
    ----------
    name
        A registered head.
    params
        The user's parameters (from ``-p KEY=VALUE`` or a pipeline file).

    Returns
    -------
    dict
        The parameters the head is built with: the registry defaults, then ``params``
        (lists turned into tuples where the estimator's default is a tuple).

    Raises
    ------
    ConfigError
        One line naming the head, the key, the value and what is allowed; an unknown key
        gets a "did you mean" suggestion. An unknown head is a :class:`HeadNotFoundError`.

    Examples
    --------
    >>> validate_head_params("knn", {"n_neighbors": 15})["n_neighbors"]
    15
    >>> validate_head_params("knn", {"n_neighbors": "fifteen"})
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: head 'knn': n_neighbors='fifteen' is not allowed; n_neighbors must be an int in the range [1, inf).
    >>> validate_head_params("logreg", {"c": 1.0})
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: head 'logreg' has no parameter(s) ['c'] (did you mean 'C'?); its parameters: C, class_weight, dual, fit_intercept, intercept_scaling, l1_ratio, max_iter, n_jobs, penalty, random_state, solver, tol, verbose, warm_start.
    """
    return _checked_estimator(name, params or {}, None)[1]


def _checked_estimator(
    name: str, params: Mapping[str, Any], random_state: int | None
) -> tuple[BaseEstimator, dict[str, Any]]:
    """Head ``name``'s estimator with the registry defaults, then ``params``, then the seed
    (where it takes one and ``params`` does not set it), each checked; and those parameters."""
    info = head_info(name)
    est = info.new()
    valid = est.get_params(deep=False)
    merged = {**info.defaults, **dict(params)}
    if "random_state" in valid and "random_state" not in merged and random_state is not None:
        merged["random_state"] = random_state
    merged = coerce_params(merged, valid)
    set_checked_params(name, est, merged)
    return est, merged


@dataclass(frozen=True)
class HeadSpec:
    """What a head is: registry name, parameters, preprocessing, seed.

    Parameters
    ----------
    name
        A registered head (:func:`list_heads`), optionally with inline parameters
        (``"logreg?C=0.5"``, the grammar of :mod:`embedpipe.specs`).
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
    preprocess: str | Sequence[str] | None = "auto"
    random_state: int | None = 0

    def __post_init__(self) -> None:
        # "logreg?C=0.5&max_iter=500": inline parameters, overridden by explicit ``params``
        name, inline = split_options(self.name, what="head parameter")
        if inline:
            object.__setattr__(self, "name", name)
            object.__setattr__(self, "params", {**inline, **dict(self.params)})

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

    def validate(self) -> None:
        """Check the name, parameters and preprocessing without building anything heavy twice.

        Raises
        ------
        ConfigError
            See :func:`validate_head_params` and :func:`parse_preprocess`.
        """
        self.build_estimator()
        parse_preprocess(self.preprocess)

    def build_estimator(self) -> BaseEstimator:
        """The classifier alone (no preprocessing), its parameters validated."""
        return _checked_estimator(self.name, self.params, self.random_state)[0]

    def build(self) -> Pipeline:
        """The unfitted head: ``Pipeline(preprocessing steps + [("head", classifier)])``."""
        from sklearn.pipeline import Pipeline

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
    preprocess: str | Sequence[str] | None = "auto",
    random_state: int | None = 0,
) -> Pipeline:
    """Build an unfitted head by name.

    Parameters
    ----------
    name
        A registered head: ``logreg``, ``linear_svm``, ``ridge``, ``sgd``, ``random_forest``,
        ``extra_trees``, ``hist_gb``, ``nearest_centroid``, ``knn``, ``torch_linear``,
        ``torch_mlp`` (see :func:`describe_heads`), or one a plugin registered.
    params
        Classifier parameters (override the registry defaults).
    preprocess
        ``"auto"`` (default: none for L2-normalised features, else standardize; see
        :mod:`embedpipe.heads.autoscale`), ``"standardize"``, ``"l2"``, ``"pca:N"``,
        combinations such as ``"l2+pca:128"``, or ``None``.
    random_state
        Seed for every step that takes one.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Preprocessing steps then a ``"head"`` step.

    Raises
    ------
    ConfigError
        Unknown head name (the message lists the registered ones), unknown or invalid
        parameter (says what is allowed) or bad preprocessing step.

    Examples
    --------
    >>> make_head("knn", {"n_neighbors": 10}, preprocess="l2").steps[-1][1]
    FaissKNNClassifier(n_neighbors=10)
    """
    return HeadSpec(name, dict(params or {}), preprocess, random_state).build()
