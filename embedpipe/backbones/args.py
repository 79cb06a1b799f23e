"""The one parser of backbone arguments as people write them (CLI flags, pipeline files).

``weights: none`` (any case) means random initialisation; unset arguments are left out, so
the backbone's own defaults apply. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import Arg, ConfigError

#: The text that asks for random initialisation (``--weights none``, ``weights: none``).
NO_WEIGHTS = "none"


def parse_weights(value: str | None, resolve_path: Callable[[str], Any] | None = None) -> Any:
    """``"none"`` → ``None`` (random init); a name or file as given, or through
    ``resolve_path`` (a pipeline resolves files relative to its own folder).

    Examples
    --------
    >>> parse_weights("None") is None, parse_weights("IMAGENET1K_V1")
    (True, 'IMAGENET1K_V1')
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(Arg("weights", value), "; give a weights name, a file path or 'none'.")
    if value.strip().lower() == NO_WEIGHTS:
        return None
    return resolve_path(value) if resolve_path is not None else value


def backbone_kwargs(
    *,
    weights: str | None = None,
    layer: str | int | None = None,
    pooling: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    options: Mapping[str, Any] | None = None,
    resolve_path: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of :func:`embedpipe.backbones.load_backbone` from what a person set.

    Only the arguments that are set are passed on; ``weights="none"`` becomes
    ``weights=None`` (random init). ``options`` (kind-specific, e.g. ``crop_size``) come
    first; an explicit argument of the same name wins.

    Examples
    --------
    >>> backbone_kwargs(weights="none", layer="layer3", options={"crop_size": 64})
    {'crop_size': 64, 'weights': None, 'layer': 'layer3'}
    >>> backbone_kwargs()
    {}
    """
    kw: dict[str, Any] = dict(options or {})
    if weights is not None:
        kw["weights"] = parse_weights(weights, resolve_path)
    for name, value in (
        ("layer", layer),
        ("pooling", pooling),
        ("device", device),
        ("precision", precision),
    ):
        if value is not None:
            kw[name] = value
    return kw
