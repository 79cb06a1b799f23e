"""Head parameters checked against the estimator's declared constraints before anything runs.

scikit-learn estimators declare what each parameter accepts (``_parameter_constraints``);
:func:`refused_param` tests a value against that declaration directly, so a message names the
head, the key, the value and what is allowed without reading scikit-learn's error text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..registry import suggest
from ..specs import parse_pair


def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``"key=value"`` (the grammar of :mod:`embedpipe.specs`: ``0.5``, ``true``,
    ``[256, 128]``, ``balanced``).

    Examples
    --------
    >>> parse_param("hidden_sizes=[256, 64]")
    ('hidden_sizes', [256, 64])
    """
    return parse_pair(
        text, what="head parameter", form="key=value, e.g. C=0.5 or hidden_sizes=[256]"
    )


def refused_param(est: Any, params: Mapping[str, Any]) -> tuple[str, Any, str] | None:
    """The first ``(key, value, what is allowed)`` of ``params`` that ``est``'s declared
    constraints refuse, or ``None`` (also for an estimator that declares none: it checks in
    ``fit``).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> refused_param(LogisticRegression(), {"C": -1})
    ('C', -1, 'a float in the range (0.0, inf]')
    >>> refused_param(LogisticRegression(), {"C": 2.0}) is None
    True
    """
    declared = getattr(est, "_parameter_constraints", None)
    if not isinstance(declared, Mapping):
        return None
    from sklearn.utils._param_validation import make_constraint

    for key, value in params.items():
        accepted = declared.get(key)
        if accepted is None or accepted == "no_validation":
            continue
        constraints = [make_constraint(c) for c in accepted]
        if any(c.is_satisfied_by(value) for c in constraints):
            continue
        shown = [str(c) for c in constraints if not c.hidden]
        allowed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
        return key, value, allowed
    return None


def validate_estimator_params(est: Any) -> None:
    """Check an estimator's own parameters (called by our estimators' ``fit``); the message
    starts ``Class: key=value is not allowed.`` and keeps scikit-learn's wording after it.

    Examples
    --------
    >>> from embedpipe.heads.knn import FaissKNNClassifier
    >>> validate_estimator_params(FaissKNNClassifier(metric="manhattan"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: FaissKNNClassifier: metric='manhattan' is not allowed. The 'metric' parameter of FaissKNNClassifier must be a str among {...}. Got 'manhattan' instead.
    """
    refused = refused_param(est, est.get_params(deep=False))
    if refused is None:
        return
    from sklearn.utils._param_validation import InvalidParameterError

    key, value, allowed = refused
    cls = type(est).__name__
    raise InvalidParameterError(
        f"{cls}: {key}={value!r} is not allowed. The {key!r} parameter of {cls} must be "
        f"{allowed}. Got {value!r} instead."
    )


def coerce_params(params: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """YAML gives lists where an estimator's default is a tuple (``hidden_sizes``)."""
    return {
        k: tuple(v) if isinstance(v, list) and isinstance(current.get(k), tuple) else v
        for k, v in params.items()
    }


def set_checked_params(name: str, est: Any, params: Mapping[str, Any]) -> None:
    """Set ``params`` on head ``name``'s estimator ``est`` after checking each one.

    Raises
    ------
    ConfigError
        One line: an unknown key (with a close match and the head's parameters), or a value
        the estimator's constraints refuse (the key, the value and what is allowed).
    """
    valid = est.get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        lower = {k.lower(): k for k in valid}
        close = [lower[c] for c in suggest(unknown[0].lower(), list(lower), n=1)]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"head {name!r} has no parameter(s) {unknown}{hint}; "
            f"its parameters: {', '.join(sorted(valid))}."
        )
    refused = refused_param(est, {**params, **{k: v for k, v in valid.items() if k not in params}})
    if refused is not None:
        key, value, allowed = refused
        raise ConfigError(
            f"head {name!r}: {key}={value!r} is not allowed; {key} must be {allowed}."
        )
    est.set_params(**params)


def fit_inputs(est: Any, X: Any, y: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """What our classifiers' ``fit`` checks first: the parameters, then ``X`` and ``y``
    (scikit-learn's validation); sets ``est.classes_``.

    Returns
    -------
    (X, y_enc)
        The validated features and the labels as indices into ``est.classes_``.
    """
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data

    est._check_params()
    X, y = validate_data(est, X, y, dtype=dtype, ensure_min_samples=1)
    check_classification_targets(y)
    est.classes_, y_enc = np.unique(y, return_inverse=True)
    return X, y_enc
