"""The executor of a run: where sharded encodes and index adds go (``executor:`` in the file).

A pipeline file may name one executor for the whole run::

    executor: ray                                     # or: local
    executor: {name: ray, address: auto, num_workers: 4, gpus_per_worker: 1}

Every encode stage of such a run is sharded (``n_shards`` / ``shard_size`` on the stage say
how; default shards of 8192 items) and index stages over sharded stores add the shards on the
executor. Without an executor, encodes write one file. None of this is part of any stage key: a sharded store holds the same features as a one-process encode, so a run with
an executor reuses the entries of a run without one, and the other way round.

The executor is started on first use (a fully cached run never starts Ray) and closed when the
run ends, failed or not. :mod:`embedpipe.executors` imports no torch; what runs on the
executor (the sharded encode, the parallel FAISS add) is imported only when a stage needs it.
"""

from __future__ import annotations

import logging
from typing import Any

from ..executors import NO_EXECUTOR, Executor, ExecutorConfig, parse_executor

log = logging.getLogger("embedpipe.pipeline")

__all__ = ["NO_EXECUTOR", "RunExecutor", "parse_executor", "resolve_executor"]


def resolve_executor(
    file_value: Any,
    override: Any = None,
    *,
    what: str = "key 'executor'",
) -> ExecutorConfig | None:
    """The executor settings of a run: the file's, with ``override``'s keys on top.

    The parsing is :func:`embedpipe.executors.parse_executor`'s (the one parser of executor
    settings); ``what`` names where ``file_value`` comes from in error messages.
    """
    return parse_executor(file_value, override, what=what)


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
            from .. import executors  # looked up at call time (tests replace get_executor)

            self._executor = executors.get_executor(self.config or "local")
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
