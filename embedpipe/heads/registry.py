"""Heads by name: a registry of classifiers and the feature preprocessing in front of them.

A head is a scikit-learn :class:`~sklearn.pipeline.Pipeline` of preprocessing steps
(``standardize``, ``l2``, ``pca``) and one classifier, described by a :class:`HeadSpec`
(name, parameters, preprocessing) that is what pipelines, saved heads and evaluation reports
record.

Heads are entries of one :class:`~embedpipe.registry.Registry` (``HEADS``, entry-point group
``embedpipe.heads``). A factory may be a ``"module:attribute"`` string, imported only when the
head is built, so listing the heads (``embedpipe heads``) imports neither scikit-learn nor
torch. Add one with :func:`register_head`:

Examples
--------
>>> from sklearn.naive_bayes import GaussianNB
>>> @register_head("gnb", description="Gaussian naive Bayes", defaults={"var_smoothing": 1e-8})
... class MyGNB(GaussianNB):
...     pass
>>> make_head("gnb", preprocess=None).steps[-1][1]
MyGNB(var_smoothing=1e-08)
>>> HEADS.unregister("gnb")
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, NotFoundError
from ..registry import Registry, did_you_mean, suggest

if TYPE_CHECKING:  # scikit-learn is imported when a head is built, not to list them
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

F = TypeVar("F", bound=Callable[..., Any])


class HeadNotFoundError(NotFoundError, ConfigError):
    """An unknown head name (a :class:`NotFoundError` and, as before, a :class:`ConfigError`)."""


@dataclass(frozen=True)
class HeadInfo:
    """A registered head: how to build it and what it is.

    Parameters
    ----------
    factory
        A callable returning an unfitted scikit-learn classifier, or a ``"module:attribute"``
        string naming one (imported on first use).
    description
        One line shown by ``embedpipe heads``.
    defaults
        Parameters given to the factory unless the user sets them.
    needs
        Parameters without a usable default: such a head is listed by ``embedpipe heads`` but
        not by :func:`list_heads` (which names the heads that build and fit from defaults).
    """

    factory: Callable[..., Any] | str
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Parameters the user must give (no usable default), e.g. ``("text_encoder",)``.
    needs: tuple[str, ...] = ()

    def resolve(self) -> Callable[..., Any]:
        """The factory itself (a string factory is imported here)."""
        if not isinstance(self.factory, str):
            return self.factory
        module, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj  # type: ignore[no-any-return]

    def new(self) -> BaseEstimator:
        """An estimator with the factory's own defaults (the registry defaults not applied)."""
        return self.resolve()()  # type: ignore[no-any-return]

    def estimator_type(self) -> type:
        """The class of the estimators this head builds (for the safe-loading allow-list)."""
        factory = self.resolve()
        return factory if isinstance(factory, type) else type(self.new())


#: The heads: scikit-learn's below (a table of lazy "module:Class" names, so listing imports
#: none of them), embedpipe's own estimators, and ``embedpipe.heads.zero_shot``, which registers
#: itself and is imported on the first look-up. Plugins: entry-point group ``embedpipe.heads``.
HEADS: Registry[HeadInfo] = Registry(
    "head", group="embedpipe.heads", builtins="embedpipe.heads.zero_shot"
)


def register_head(
    name: str,
    factory: Callable[..., Any] | str | None = None,
    description: str = "",
    *,
    defaults: Mapping[str, Any] | None = None,
    needs: Sequence[str] = (),
    overwrite: bool = False,
    **more_defaults: Any,
) -> Any:
    """Add a head to the registry; without ``factory`` it is a class or function decorator.

    Parameters
    ----------
    name
        The head's name in ``--head``, pipeline files and saved heads.
    factory
        ``factory(**params)`` returns an unfitted scikit-learn classifier; a
        ``"module:attribute"`` string is imported only when the head is built.
    description
        One line for ``embedpipe heads``.
    defaults
        Parameters used unless the user sets them (keyword arguments add more).
    needs
        Parameters the user must give (e.g. a zero-shot head's ``text_encoder``).
    overwrite
        Replace an existing head of that name.

    Examples
    --------
    >>> register_head("tiny_forest", "sklearn.ensemble:RandomForestClassifier",
    ...               "a small random forest", defaults={"n_estimators": 5})
    >>> make_head("tiny_forest", preprocess=None)[-1].n_estimators
    5
    >>> HEADS.unregister("tiny_forest")
    """
    all_defaults = {**dict(defaults or {}), **more_defaults}

    def add(obj: F) -> F:
        text = description or _first_line(getattr(obj, "__doc__", None)) or name
        HEADS.register(name, HeadInfo(obj, text, all_defaults, tuple(needs)), overwrite=overwrite)
        return obj

    if factory is None:
        return add
    info = HeadInfo(factory, description or name, all_defaults, tuple(needs))
    HEADS.register(name, info, overwrite=overwrite)
    return None


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""


def head_info(name: str) -> HeadInfo:
    """The registration of head ``name``.

    Raises
    ------
    HeadNotFoundError
        For an unknown name, with a "did you mean" suggestion and the registered heads.
    """
    HEADS.load_plugins()
    try:
        return _as_info(name, HEADS.get(name))
    except NotFoundError:
        raise HeadNotFoundError(
            f"unknown head {name!r}{did_you_mean(name, list(HEADS))}; registered heads: "
            f"{', '.join(list_heads(all=True))}."
        ) from None


def _as_info(name: str, entry: Any) -> HeadInfo:
    """A plugin's entry point may name an estimator class or factory directly."""
    if isinstance(entry, HeadInfo):
        return entry
    if callable(entry) or isinstance(entry, str):
        return HeadInfo(entry, _first_line(getattr(entry, "__doc__", None)) or name)
    raise ConfigError(f"head {name!r} is registered as {entry!r}, which builds no estimator.")


def list_heads(*, all: bool = False) -> list[str]:  # noqa: A002 - reads well at call sites
    """Names of the registered heads that build and fit from their defaults; ``all=True``
    adds those that need parameters (``zero_shot`` needs a ``text_encoder``).

    Examples
    --------
    >>> "logreg" in list_heads() and "zero_shot" not in list_heads()
    True
    >>> "zero_shot" in list_heads(all=True)
    True
    """
    HEADS.load_plugins()
    return [k for k, e in HEADS.items() if all or not _as_info(k, e).needs]


def describe_heads() -> dict[str, str]:
    """``{name: one-line description}`` of the registered heads (imports no head's code).

    Examples
    --------
    >>> describe_heads()["ridge"]
    'ridge regression on one-hot targets'
    """
    HEADS.load_plugins()
    return {k: _as_info(k, info).description for k, info in HEADS.items()}


# ---- the heads embedpipe ships (string factories: nothing is imported to list them) --------
for _name, _factory, _text, _defaults in (
    (
        "logreg",
        "sklearn.linear_model:LogisticRegression",
        "multinomial logistic regression (lbfgs)",
        {"max_iter": 2000},
    ),
    (
        "linear_svm",
        "sklearn.svm:LinearSVC",
        "linear support vector machine (liblinear)",
        {"max_iter": 5000},
    ),
    ("ridge", "sklearn.linear_model:RidgeClassifier", "ridge regression on one-hot targets", {}),
    (
        "sgd",
        "sklearn.linear_model:SGDClassifier",
        "linear model trained by SGD (log loss: has predict_proba; supports out-of-core partial_fit)",
        {"loss": "log_loss", "alpha": 1e-4, "max_iter": 50, "tol": 1e-4},
    ),
    (
        "random_forest",
        "sklearn.ensemble:RandomForestClassifier",
        "random forest",
        {"n_estimators": 200},
    ),
    (
        "extra_trees",
        "sklearn.ensemble:ExtraTreesClassifier",
        "extremely randomised trees",
        {"n_estimators": 200},
    ),
    (
        "hist_gb",
        "sklearn.ensemble:HistGradientBoostingClassifier",
        "histogram gradient boosting",
        {},
    ),
    ("nearest_centroid", "sklearn.neighbors:NearestCentroid", "nearest class mean", {}),
    (
        "knn",
        "embedpipe.heads.knn:FaissKNNClassifier",
        "k-nearest neighbours on a FAISS index (cosine by default)",
        {},
    ),
    (
        "torch_linear",
        "embedpipe.heads.torch_head:TorchHeadClassifier",
        "linear head in torch (AdamW, early stopping; partial_fit)",
        {},
    ),
    (
        "torch_mlp",
        "embedpipe.heads.torch_head:TorchHeadClassifier",
        "one-hidden-layer MLP in torch (AdamW, early stopping; partial_fit)",
        {"hidden_sizes": (256,), "dropout": 0.1},
    ),
):
    register_head(_name, _factory, _text, defaults=_defaults)
del _name, _factory, _text, _defaults

PREPROCESS_STEPS = ("standardize", "l2", "pca")
_ALIASES = {
    "standardise": "standardize",
    "scale": "standardize",
    "normalize": "l2",
    "normalise": "l2",
}


def parse_preprocess(preprocess: str | Sequence[str] | None) -> list[str]:
    """Normalise a preprocessing description into step tokens.

    Accepts ``None``/``"none"``, one string (``"standardize"``, ``"l2+pca:128"``,
    ``"l2,standardize"``) or a list of steps. ``pca`` takes an optional ``:N`` (components) or
    ``:0.95`` (explained variance).

    Raises
    ------
    ConfigError
        For an unknown step or a bad PCA size.

    Examples
    --------
    >>> parse_preprocess("normalise+pca:64")
    ['l2', 'pca:64']
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
                f"unknown preprocessing step {p!r}{did_you_mean(name, list(PREPROCESS_STEPS))}; "
                f"use {list(PREPROCESS_STEPS)} (e.g. 'standardize', 'l2+pca:128') or 'none'."
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
    """The sklearn transformers of a preprocessing description, as Pipeline steps.

    Examples
    --------
    >>> [name for name, _ in preprocess_steps("l2+standardize")]
    ['l2', 'standardize']
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import Normalizer, StandardScaler

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
    """Parse ``"key=value"`` (value read as YAML: ``0.5``, ``true``, ``[256, 128]``, ``balanced``).

    Examples
    --------
    >>> parse_param("hidden_sizes=[256, 64]")
    ('hidden_sizes', [256, 64])
    """
    import yaml

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


_SKLEARN_PARAM_ERROR = re.compile(
    r"The '(?P<key>[^']+)' parameter of \S+ must be (?P<allowed>.+?)\.? Got (?P<got>.+) instead\.?$",
    re.S,
)


def _coerce(params: dict[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """YAML gives lists where an estimator's default is a tuple (``hidden_sizes``)."""
    return {
        k: tuple(v) if isinstance(v, list) and isinstance(current.get(k), tuple) else v
        for k, v in params.items()
    }


def _check_params(name: str, est: Any, params: dict[str, Any]) -> None:
    valid = est.get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        lower = {k.lower(): k for k in valid}
        close = [lower[c] for c in suggest(unknown[0].lower(), list(lower), n=1)]
        hint = f"did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"head {name!r} has no parameter(s) {unknown}{f' ({hint})' if hint else ''}; "
            f"its parameters: {', '.join(sorted(valid))}."
        )
    est.set_params(**params)
    if not hasattr(est, "_parameter_constraints") or not hasattr(est, "_validate_params"):
        return  # a plugin estimator without scikit-learn constraints: it checks in fit
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        est._validate_params()
    except InvalidParameterError as e:
        m = _SKLEARN_PARAM_ERROR.match(str(e))
        if m is None or m["key"] not in params:
            raise ConfigError(f"head {name!r}: {e}") from None
        key = m["key"]
        raise ConfigError(
            f"head {name!r}: {key}={params[key]!r} is not allowed; {key} must be {m['allowed']}."
        ) from None


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
    info = head_info(name)
    est = info.new()
    merged = _coerce({**info.defaults, **dict(params or {})}, est.get_params(deep=False))
    _check_params(name, est, merged)
    return merged


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
        info = head_info(self.name)
        est = info.new()
        valid = est.get_params(deep=False)
        params = {**info.defaults, **dict(self.params)}
        if (
            "random_state" in valid
            and "random_state" not in params
            and self.random_state is not None
        ):
            params["random_state"] = self.random_state
        _check_params(self.name, est, _coerce(params, valid))
        return est

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
    preprocess: str | Sequence[str] | None = "standardize",
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
        Unknown head name (the message lists the registered ones), unknown or invalid
        parameter (says what is allowed) or bad preprocessing step.

    Examples
    --------
    >>> make_head("knn", {"n_neighbors": 10}, preprocess="l2").steps[-1][1]
    FaissKNNClassifier(n_neighbors=10)
    """
    return HeadSpec(name, dict(params or {}), preprocess, random_state).build()
