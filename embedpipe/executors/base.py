"""The executor interface: run tasks on workers that each build their (costly) state once.

A task runner is built on each worker by ``make_worker(shared)``: for an encode, that loads
the model once; ``shared`` (the data source, a serialised index) is shipped to each worker
once. The worker then runs tasks, one at a time: ``worker(task) -> result``.
"""

from __future__ import annotations

import os
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from ..errors import EmbedpipeError
from .config import ExecutorConfig

R = TypeVar("R")

Worker = Callable[[Any], Any]
WorkerFactory = Callable[[Any], Worker]


class WorkerLostError(EmbedpipeError):
    """A task's worker process died more times than ``max_attempts`` allows."""


@dataclass
class Completed(Generic[R]):
    """A finished task: its position in the task list, its result and the tries it took."""

    index: int
    value: R
    attempts: int


class Executor(ABC):
    """Runs tasks on workers. Use as a context manager, or call :meth:`close`."""

    name: ClassVar[str]

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config

    @property
    @abstractmethod
    def parallelism(self) -> int:
        """How many tasks can run at once."""

    @abstractmethod
    def map(
        self, make_worker: WorkerFactory, tasks: Sequence[Any], *, shared: Any = None
    ) -> Iterator[Completed[Any]]:
        """Run every task and yield each result as it completes (any order).

        ``make_worker`` and the tasks must be picklable (module-level classes/functions). An
        exception raised by a task stops the map and is re-raised here, as its own type.
        """

    @property
    def in_process(self) -> bool:
        """Whether tasks run in this process (workers may then share the driver's objects)."""
        return False

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in a store's provenance."""
        return {"executor": self.name, "parallelism": self.parallelism}

    def close(self) -> None:  # noqa: B027 - optional hook: the local executor holds nothing
        """Release workers and anything this executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ErrorBox:
    """An exception carried from a worker process, rebuilt as its own type on the driver.

    Pickling an exception calls ``cls(*args)`` on load, which fails for exceptions whose
    ``__init__`` takes other arguments than their message (embedpipe's own errors define
    ``__reduce__``; third-party ones may not); the box restores ``args`` and ``__dict__``
    without calling ``__init__``, and carries the worker's traceback.
    """

    cls: type[BaseException]
    args: tuple[Any, ...]
    state: dict[str, Any]
    traceback: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorBox:
        return cls(
            type(exc),
            tuple(exc.args),
            dict(getattr(exc, "__dict__", {})),
            "".join(traceback.format_exception(exc)),
        )

    def rebuild(self) -> BaseException:
        """The exception, with the worker's traceback chained as its cause."""
        exc = self.cls.__new__(self.cls)
        exc.args = self.args
        exc.__dict__.update(self.state)
        exc.__cause__ = RemoteTraceback(self.traceback)
        return exc


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (shown as the cause)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)

    def __str__(self) -> str:
        return f"\n--- in the worker ---\n{self.args[0]}"


def run_boxed(worker: Worker, task: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", ErrorBox)``: a worker's failure, ready to re-raise."""
    try:
        return "ok", worker(task)
    except Exception as e:  # noqa: BLE001 - every failure is re-raised on the driver
        return "error", ErrorBox.of(e)


def limit_threads(n: int) -> None:
    """Keep a worker's torch and FAISS within its reserved CPUs.

    ``OMP_NUM_THREADS`` covers libraries imported later; torch and FAISS, if already
    imported, are set directly (importing them here would cost seconds per worker).
    """
    import sys

    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once in this process
            pass
    if "faiss" in sys.modules:
        import faiss

        faiss.omp_set_num_threads(n)
