"""Executor kinds by name: ``local`` (default), ``ray`` (``pip install embedpipe[ray]``), and
plugins (entry-point group ``embedpipe.executors``).

An entry is a callable ``config -> Executor`` (an :class:`~embedpipe.executors.Executor`
subclass, or a function that imports it on first use, as ``ray`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .base import Executor
from .config import ExecutorConfig

ExecutorKind = Callable[[ExecutorConfig], Executor]

#: The registered executor kinds.
EXECUTORS: Registry[ExecutorKind] = Registry(
    "executor", group="embedpipe.executors", builtins="embedpipe.executors.local"
)


def register_executor(name: str) -> Callable[[ExecutorKind], ExecutorKind]:
    """Register an executor kind: a callable ``config -> Executor``.

    Examples
    --------
    >>> from embedpipe.executors import LocalExecutor
    >>> @register_executor("inline")
    ... class Inline(LocalExecutor):
    ...     name = "inline"
    >>> get_executor("inline").name
    'inline'
    >>> EXECUTORS.unregister("inline")
    """
    return EXECUTORS.register(name)


@register_executor("ray")
def _ray(config: ExecutorConfig) -> Executor:
    """Ray's executor, imported on use (``ray.py`` imports Ray at module level)."""
    try:
        from .ray import RayExecutor
    except ImportError as e:
        raise ConfigError(
            f"executor 'ray' needs Ray, which does not import here ({e}). Install it with "
            "`pip install embedpipe[ray]`, or use executor 'local'."
        ) from e
    return RayExecutor(config)


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
    >>> get_executor({"name": "local", "num_workers": 0})
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: bad executor settings {'name': 'local', 'num_workers': 0}: num_workers: Input should be greater than or equal to 1. Accepted keys: name, address, num_workers, cpus_per_worker, gpus_per_worker, max_attempts, loader_workers (name is one of local, ray).
    """
    config = name if isinstance(name, ExecutorConfig) and not options else None
    if config is None:
        config = ExecutorConfig.parse(name, **options)
    return EXECUTORS.get(config.name)(config)
