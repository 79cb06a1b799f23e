"""The default executor: every task in this process, one after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .base import Completed, Executor, WorkerFactory
from .config import ExecutorConfig


class LocalExecutor(Executor):
    """Runs tasks in the calling process; needs nothing beyond embedpipe itself.

    The worker is built once per :meth:`map` (so the model is loaded once) and keeps the
    process's own torch threads and DataLoader workers. A crash of the process is a crash of
    the run: re-running it redoes only unfinished shards.
    """

    name = "local"

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        super().__init__(config or ExecutorConfig())

    @property
    def parallelism(self) -> int:
        return 1

    def map(
        self, make_worker: WorkerFactory, tasks: Sequence[Any], *, shared: Any = None
    ) -> Iterator[Completed[Any]]:
        if not tasks:
            return
        worker = make_worker(shared)
        for i, task in enumerate(tasks):
            yield Completed(i, worker(task), 1)
