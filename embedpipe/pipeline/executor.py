"""The executor of a run: where sharded encodes and index adds go (``executor:`` in the file).

A pipeline file may name one executor for the whole run::

    executor: ray                                     # or: local
    executor: {name: ray, address: auto, num_workers: 4, gpus_per_worker: 1}

Every encode stage of such a run is sharded (``n_shards`` / ``shard_size`` on the stage say
how; default shards of 8192 items) and index stages over sharded stores add the shards on the
executor. Without an executor, encodes write one file. None of this is part of any stage key: a sharded store holds the same features as a one-process encode, so a run with
an executor reuses the entries of a run without one, and the other way round.

The executor is started on first use (a fully cached run never starts Ray) and closed when the
run ends, failed or not. :mod:`embedpipe.encode.executors` is imported only then too: it
imports torch, which the pipeline commands otherwise avoid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..encode.executors import Executor, ExecutorConfig

log = logging.getLogger("embedpipe.pipeline")

#: ``executor: none`` (or ``--executor none``): no executor, even if the file names one.
NO_EXECUTOR = "none"


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(
        f"{what}: expected an executor name (local, ray, none) or a mapping such as "
        f"{{name: ray, num_workers: 2}}, found {type(value).__name__} {value!r}."
    )


def parse_executor(value: Any, what: str = "key 'executor'") -> ExecutorConfig | None:
    """Validate an ``executor:`` value; ``None`` or ``"none"`` means no executor.

    A mapping without ``name`` but with an ``address`` is a Ray executor (only Ray has
    addresses); any other mapping must name its executor.

    Raises
    ------
    ConfigError
        Prefixed with ``what`` (where the value came from), naming the bad key and what it
        accepts.
    """
    if value is None:
        return None
    from ..encode.executors import ExecutorConfig

    if isinstance(value, ExecutorConfig):
        return value
    data = _as_dict(value, what)
    if data.get("name") == NO_EXECUTOR:
        return None
    if "name" not in data:
        if data.get("address") is None:
            raise ConfigError(
                f"{what}: {data} does not say which executor; add name: local or name: ray."
            )
        data["name"] = "ray"
    try:
        return ExecutorConfig.parse(data)
    except ConfigError as e:
        raise ConfigError(f"{what}: {e}") from None


def resolve_executor(
    file_value: Any,
    override: Any = None,
    *,
    what: str = "key 'executor'",
) -> ExecutorConfig | None:
    """The executor settings of a run: the file's, with ``override``'s keys on top.

    Parameters
    ----------
    file_value
        The file's ``executor:`` value (``None`` when absent).
    override
        ``None`` (keep the file's), ``"none"`` (no executor), a name, a mapping of the keys
        to change (``{"name": "ray", "address": "auto"}``, e.g. from CLI flags), or an
        :class:`~embedpipe.encode.executors.ExecutorConfig` (replaces the file's).
    what
        Where ``file_value`` comes from, for error messages (``"pipeline.yaml line 3: key
        'executor'"``).
    """
    if override is None:
        return parse_executor(file_value, what)
    if not isinstance(override, str | Mapping):
        return parse_executor(override, "executor override")
    over = _as_dict(override, "executor override")
    if over.get("name") == NO_EXECUTOR:
        return None
    if file_value is None or file_value == NO_EXECUTOR:
        return parse_executor(over, "executor override")
    base = _as_dict(file_value, what)
    return parse_executor({**base, **over}, f"{what} (with the override {over})")


class RunExecutor:
    """The executor of one run, started on first use and closed by :meth:`close`.

    Parameters
    ----------
    config
        The run's executor settings, or ``None`` when the pipeline names none.
    """

    def __init__(self, config: ExecutorConfig | None) -> None:
        self.config = config
        self._executor: Executor | None = None

    @property
    def configured(self) -> bool:
        """Whether the pipeline (or its override) names an executor."""
        return self.config is not None

    @property
    def started(self) -> bool:
        return self._executor is not None

    @property
    def name(self) -> str:
        return self.config.name if self.config is not None else "local"

    def get(self) -> Executor:
        """The executor, started now if this is its first use in the run."""
        if self._executor is None:
            from ..encode.executors import get_executor

            self._executor = get_executor(self.config or "local")
            log.info("executor: %s", self._executor.describe())
        return self._executor

    def describe(self) -> dict[str, Any] | None:
        """The settings, for the run manifest (``None``: no executor)."""
        if self.config is None:
            return None
        return self.config.model_dump(mode="json", exclude_defaults=True) | {
            "name": self.config.name
        }

    def close(self) -> None:
        """Stop the executor's workers (and a Ray instance it started); never raises."""
        ex, self._executor = self._executor, None
        if ex is None:
            return
        try:
            ex.close()
        except Exception as e:  # noqa: BLE001 - the run's outcome is already decided
            log.warning("closing the %s executor failed: %s", ex.name, e)

    def __repr__(self) -> str:
        return f"RunExecutor({self.describe()}, started={self.started})"
