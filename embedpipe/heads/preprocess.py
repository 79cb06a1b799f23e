"""A head's feature preprocessing: ``"auto"``, ``"standardize"``, ``"l2"``, ``"pca:N"`` and
combinations (``"l2+pca:128"``), as scikit-learn Pipeline steps.

Examples
--------
>>> parse_preprocess("normalise+pca:64")
['l2', 'pca:64']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..registry import did_you_mean

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

PREPROCESS_STEPS = ("auto", "standardize", "l2", "pca")
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
        if name == "auto":
            from .autoscale import AutoScaler

            steps.append(("auto", AutoScaler()))
        elif name == "standardize":
            steps.append(("standardize", StandardScaler()))
        elif name == "l2":
            steps.append(("l2", Normalizer(norm="l2")))
        else:
            n = _pca_components(arg, token) if arg else None
            steps.append(("pca", PCA(n_components=n, random_state=random_state)))
    return steps
