"""Executors: where sharded work (encodes, index adds) runs.

``local`` (default) runs everything in this process with no extra dependency; ``ray`` runs on
Ray Core actors (``pip install embedpipe[ray]``), one model per actor, re-queuing the task of
a worker that dies. Other kinds register with :func:`register_executor` or through the
``embedpipe.executors`` entry-point group. This package imports no torch: what runs on the
workers (a sharded encode, a parallel FAISS add) lives with its layer
(:mod:`embedpipe.encoding.sharded`, :mod:`embedpipe.index.parallel_add`).

Examples
--------
>>> with get_executor("local") as ex:
...     sorted(c.value for c in ex.map(lambda shared: (lambda t: t * shared), [1, 2], shared=10))
[10, 20]
"""

from __future__ import annotations

from .base import Completed, Executor, WorkerLostError
from .config import NO_EXECUTOR, ExecutorConfig, executor_flags, parse_executor
from .local import LocalExecutor
from .registry import EXECUTORS, get_executor, register_executor

__all__ = [
    "EXECUTORS",
    "NO_EXECUTOR",
    "Completed",
    "Executor",
    "ExecutorConfig",
    "LocalExecutor",
    "WorkerLostError",
    "executor_flags",
    "get_executor",
    "parse_executor",
    "register_executor",
]
