"""The default executor: tasks in this process, or on one worker process per visible GPU.

``local`` with default settings runs every task in the calling process, one after another,
and needs nothing beyond embedpipe itself. With ``gpus_per_worker=1`` it starts one worker
process per visible CUDA GPU (each sees only its own GPU, through ``CUDA_VISIBLE_DEVICES``),
and with ``num_workers=N`` N CPU worker processes; each process builds its worker (loads its
model) once and takes the next task as it finishes one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import ConfigError
from .base import (
    Completed,
    ErrorBox,
    Executor,
    Worker,
    WorkerFactory,
    WorkerLostError,
    limit_threads,
    run_boxed,
)
from .config import ExecutorConfig
from .registry import register_executor

_WORKER: Worker | None = None
_SETUP_ERROR: ErrorBox | None = None


def _start(env: dict[str, str], threads: int, make_worker: WorkerFactory, shared: Any) -> None:
    """Runs first in each worker process: its GPU, its threads, then its worker."""
    global _WORKER, _SETUP_ERROR
    os.environ.update(env)
    try:
        limit_threads(threads)
        _WORKER = make_worker(shared)
    except Exception as e:  # noqa: BLE001 - re-raised on the driver by the first task
        _SETUP_ERROR = ErrorBox.of(e)


def _run(task: Any) -> tuple[str, Any]:
    if _SETUP_ERROR is not None:
        return "error", _SETUP_ERROR
    assert _WORKER is not None
    return run_boxed(_WORKER, task)


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        ids = [d.strip() for d in listed.split(",") if d.strip()]
        return ids[:n]
    return [str(k) for k in range(n)]


@register_executor("local")
class LocalExecutor(Executor):
    """Runs tasks on this machine: in the calling process by default, else on worker
    processes (one per visible GPU with ``gpus_per_worker=1``, or ``num_workers``).

    In-process, the worker is built once per :meth:`map` (so the model is loaded once) and
    keeps the process's own torch threads and DataLoader workers; a crash of the process is a
    crash of the run, and re-running it redoes only unfinished shards.

    Examples
    --------
    >>> ex = LocalExecutor()
    >>> ex.parallelism, ex.in_process
    (1, True)
    """

    name = "local"

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        super().__init__(config or ExecutorConfig())
        self._slots: list[dict[str, str]] | None = None

    def slots(self) -> list[dict[str, str]]:
        """The environment of each worker process; empty when tasks run in this process."""
        if self._slots is None:
            c = self.config
            if c.gpus_per_worker > 0:
                gpus = visible_gpus()
                if not gpus:
                    raise ConfigError(
                        f"executor 'local' with gpus_per_worker={c.gpus_per_worker:g} needs a "
                        "visible CUDA GPU and none is here; drop gpus_per_worker to run on CPU."
                    )
                per = max(1, int(c.gpus_per_worker))
                groups = [gpus[k : k + per] for k in range(0, len(gpus) - per + 1, per)]
                groups = groups[: c.num_workers] if c.num_workers else groups
                self._slots = [{"CUDA_VISIBLE_DEVICES": ",".join(g)} for g in groups]
            elif c.num_workers and c.num_workers > 1:
                self._slots = [{} for _ in range(c.num_workers)]
            else:
                self._slots = []
        return self._slots

    @property
    def parallelism(self) -> int:
        return max(1, len(self.slots()))

    @property
    def in_process(self) -> bool:
        return not self.slots()

    def describe(self) -> dict[str, Any]:
        d = {"executor": self.name, "parallelism": self.parallelism}
        if self.config.gpus_per_worker > 0:
            d["gpus_per_worker"] = self.config.gpus_per_worker
        return d

    def map(
        self, make_worker: WorkerFactory, tasks: Sequence[Any], *, shared: Any = None
    ) -> Iterator[Completed[Any]]:
        if not tasks:
            return
        if self.in_process:
            worker = make_worker(shared)
            for i, task in enumerate(tasks):
                yield Completed(i, worker(task), 1)
            return
        yield from self._map_processes(make_worker, tasks, shared)

    def _map_processes(
        self, make_worker: WorkerFactory, tasks: Sequence[Any], shared: Any
    ) -> Iterator[Completed[Any]]:
        ctx = mp.get_context("spawn")  # never fork a process that may hold CUDA or threads
        threads = self.config.torch_threads()
        slots = self.slots()[: len(tasks)]
        pools = [
            ProcessPoolExecutor(
                1, mp_context=ctx, initializer=_start, initargs=(env, threads, make_worker, shared)
            )
            for env in slots
        ]
        pending: deque[int] = deque(range(len(tasks)))
        running: dict[Future[Any], tuple[int, int]] = {}

        def feed(slot: int) -> None:
            if pending:
                i = pending.popleft()
                running[pools[slot].submit(_run, tasks[i])] = (slot, i)

        try:
            for s in range(len(pools)):
                feed(s)
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in done:
                    slot, i = running.pop(f)
                    try:
                        status, value = f.result()
                    except BrokenProcessPool as e:
                        raise WorkerLostError(
                            f"task {i} lost its local worker process ({e}); a worker that dies "
                            "is usually out of memory: lower batch_size."
                        ) from e
                    if status == "error":
                        raise value.rebuild()
                    yield Completed(i, value, 1)
                    feed(slot)
        finally:
            for p in pools:
                p.shutdown(wait=True, cancel_futures=True)
