"""Executors by name: ``local`` (default) and ``ray`` (``pip install embedpipe[ray]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from .base import Executor
from .config import ExecutorConfig
from .local import LocalExecutor


def get_executor(
    name: ExecutorConfig | str | Mapping[str, Any] | None = "local", **options: Any
) -> Executor:
    """Build an executor from a name, a config or a pipeline file's ``executor:`` mapping.

    Parameters
    ----------
    name
        ``"local"``, ``"ray"``, an :class:`ExecutorConfig` or its dict; ``None`` = local.
    **options
        :class:`ExecutorConfig` fields overriding ``name``'s (``num_workers=2``,
        ``address="auto"``...); ``None`` values are ignored, so CLI flags pass straight in.

    Returns
    -------
    Executor
        Close it (or use ``with``) to stop its workers and any Ray instance it started.

    Raises
    ------
    ConfigError
        Unknown name or option, or ``ray`` without Ray installed.

    Examples
    --------
    >>> get_executor("local").parallelism
    1
    >>> get_executor({"name": "ray", "num_workers": 2})  # doctest: +SKIP
    """
    config = ExecutorConfig.parse(name, **options)
    if config.name == "local":
        return LocalExecutor(config)
    try:
        from .ray_executor import RayExecutor
    except ImportError as e:
        raise ConfigError(
            f"executor 'ray' needs Ray, which does not import here ({e}). Install it with "
            "`pip install embedpipe[ray]`, or use executor 'local'."
        ) from e
    return RayExecutor(config)
