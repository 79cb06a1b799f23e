"""scikit-learn's parameter validation for the estimators we ship, with messages led by the value."""

from __future__ import annotations

from typing import Any

from sklearn.utils._param_validation import InvalidParameterError


def validate_estimator_params(est: Any) -> None:
    """Run ``est._validate_params()``; the message starts ``Class: key=value is not allowed.``

    Examples
    --------
    >>> from embedpipe.heads.knn import FaissKNNClassifier
    >>> validate_estimator_params(FaissKNNClassifier(metric="manhattan"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: FaissKNNClassifier: metric='manhattan' is not allowed. The 'metric' parameter of FaissKNNClassifier must be a str among {...}. Got 'manhattan' instead.
    """
    try:
        est._validate_params()
    except InvalidParameterError as e:
        text = str(e)
        key = text.split("'")[1] if text.count("'") >= 2 else ""
        value = est.get_params(deep=False).get(key)
        raise InvalidParameterError(
            f"{type(est).__name__}: {key}={value!r} is not allowed. {text}"
        ) from None
