"""Heads by name: the registry of classifiers (what a name builds and how it is listed).

A head's full description (name, parameters, preprocessing) is a
:class:`~embedpipe.heads.spec.HeadSpec`; its preprocessing steps are read by
:mod:`embedpipe.heads.preprocess`; its parameters are checked by :mod:`embedpipe.heads.params`.

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
>>> from embedpipe.heads import make_head
>>> make_head("gnb", preprocess=None).steps[-1][1]
MyGNB(var_smoothing=1e-08)
>>> HEADS.unregister("gnb")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, NotFoundError
from ..registry import Registry, did_you_mean

if TYPE_CHECKING:  # scikit-learn is imported when a head is built, not to list them
    from sklearn.base import BaseEstimator

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
    >>> from embedpipe.heads import make_head
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
