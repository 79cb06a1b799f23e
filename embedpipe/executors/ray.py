"""The Ray executor: Ray Core actors, each holding one worker (one model), tasks re-queued when
an actor's process dies.

Why Ray Core actors rather than Ray Data: on small machines Ray Data's streaming executor can
deadlock when actors claim every CPU; here every actor reserves ``cpus_per_worker`` CPUs
explicitly and the driver only schedules, so there is nothing to starve.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, WorkerCrashedError

from ..errors import ConfigError
from .base import (
    Completed,
    ErrorBox,
    Executor,
    WorkerFactory,
    WorkerLostError,
    limit_threads,
    run_boxed,
)
from .config import ExecutorConfig

log = logging.getLogger(__name__)


class _Host:
    """A Ray actor hosting one worker at a time; failures come back boxed, never as a dead actor.

    The actor outlives a :meth:`RayExecutor.map`: its process keeps its imports (torch,
    transformers: seconds to load) for the executor's next map, and only the worker (the
    model) is dropped in between.
    """

    def __init__(self, threads: int) -> None:
        limit_threads(threads)
        self._worker: Any = None
        self._error: ErrorBox | None = None

    def setup(self, make_worker: WorkerFactory, shared: Any) -> None:
        self._worker, self._error = None, None
        try:
            self._worker = make_worker(shared)
        except Exception as e:  # noqa: BLE001 - re-raised on the driver by the first task
            self._error = ErrorBox.of(e)

    def clear(self) -> None:
        self._worker, self._error = None, None
        gc.collect()

    def where(self) -> str:
        return f"pid {os.getpid()} on {socket.gethostname()}"

    def run(self, task: Any) -> tuple[str, Any]:
        if self._error is not None:
            return "error", self._error
        return run_boxed(self._worker, task)


class RayExecutor(Executor):
    """Runs tasks on Ray actors (``pip install embedpipe[ray]``).

    Up to ``num_workers`` actors are started on first use and kept until :meth:`close` (their
    imports survive between maps). Each :meth:`map` builds its worker once per actor (an
    encode loads its model once per actor) and feeds the actors one task at a time.
    When an actor's process dies (killed, out of memory, node lost) its task is re-queued on a
    new actor, up to ``max_attempts`` tries; an exception raised by the task itself stops the
    run and is re-raised as its own type.

    Parameters
    ----------
    config
        See :class:`ExecutorConfig`; ``config.address`` chooses the cluster.

    Examples
    --------
    Starting Ray takes seconds, so this example does not run here (``tests/encoding/
    test_executors_ray.py`` runs it)::

        with get_executor("ray", num_workers=2) as ex:
            result = encode(source, "resnet18", "cache/x.h5", executor=ex)
    """

    name = "ray"

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        super().__init__(config or ExecutorConfig(name="ray"))
        self._started = False
        self._host_cls: Any = None
        self._actors: list[Any] = []
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
            try:
                if self.config.address is not None:
                    ray.init(address=self.config.address, **kwargs)
                else:
                    ray.init(**kwargs)
                    self._started = True
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(
                    f"cannot connect to Ray at address={self.config.address!r}: {e}. Start a "
                    "cluster with `ray start --head`, pass its address ('auto' on its head "
                    "node, 'ray://host:10001' from elsewhere), or omit address to start a "
                    "private local Ray."
                ) from e

    # ---- capacity -----------------------------------------------------------------------
    def _capacity(self) -> int:
        """How many workers the cluster can hold at once."""
        res = ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        cfg = self.config
        cap = math.floor(cpus / cfg.cpus_per_worker + 1e-9)
        if cfg.gpus_per_worker > 0:
            cap = min(cap, math.floor(gpus / cfg.gpus_per_worker + 1e-9))
        if cap < 1:
            raise ConfigError(
                f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs, but a worker asks for "
                f"cpus_per_worker={cfg.cpus_per_worker:g} and gpus_per_worker="
                f"{cfg.gpus_per_worker:g}. Lower them or add nodes."
            )
        return cap

    @property
    def parallelism(self) -> int:
        cap = self._capacity()
        want = self.config.num_workers or cap
        if want > cap:
            # Actors that cannot be placed would hold their task forever: cap instead.
            log.warning(
                "num_workers=%d but the Ray cluster holds %d workers of this size; using %d",
                want,
                cap,
                cap,
            )
        return min(want, cap)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "executor": self.name,
            "parallelism": self.parallelism,
            "cpus_per_worker": c.cpus_per_worker,
            "gpus_per_worker": c.gpus_per_worker,
        }

    # ---- running ------------------------------------------------------------------------
    def _new_actor(self) -> Any:
        if self._host_cls is None:
            self._host_cls = ray.remote(_Host)
        c = self.config
        return self._host_cls.options(
            num_cpus=c.cpus_per_worker,
            num_gpus=c.gpus_per_worker,
            max_restarts=0,
            max_task_retries=0,
        ).remote(c.torch_threads())

    def map(
        self, make_worker: WorkerFactory, tasks: Sequence[Any], *, shared: Any = None
    ) -> Iterator[Completed[Any]]:
        n = len(tasks)
        if n == 0:
            return
        slots = min(self.parallelism, n)
        while len(self._actors) < slots:
            self._actors.append(None)
        # Put once: every actor reads the same object-store copy (zero-copy for numpy data).
        factory_ref, shared_ref = ray.put(make_worker), ray.put(shared)
        ready_slots: set[int] = set()
        busy: dict[int, Any] = {}  # slot -> running task ref
        pending: deque[int] = deque(range(n))
        attempts = [0] * n
        running: dict[Any, tuple[int, int]] = {}
        finished = False
        try:
            while pending or running:
                for s in range(slots):
                    if not pending:
                        break
                    if s in busy:
                        continue
                    if self._actors[s] is None:
                        self._actors[s] = self._new_actor()
                    if s not in ready_slots:
                        self._actors[s].setup.remote(factory_ref, shared_ref)  # runs before `run`
                        ready_slots.add(s)
                    i = pending.popleft()
                    attempts[i] += 1
                    ref = self._actors[s].run.remote(tasks[i])
                    running[ref] = (s, i)
                    busy[s] = ref
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    s, i = running.pop(ref)
                    del busy[s]
                    try:
                        status, value = ray.get(ref)
                    except (RayActorError, WorkerCrashedError) as e:
                        self._retire(s)
                        ready_slots.discard(s)
                        if attempts[i] >= self.config.max_attempts:
                            raise WorkerLostError(
                                f"task {i} ({_describe_task(tasks[i])}) lost its worker "
                                f"{attempts[i]} times (last: {str(e).splitlines()[0]}). A worker "
                                "that dies on the same task every time is usually out of memory: "
                                "lower batch_size, give workers more memory, or raise "
                                "max_attempts if the cluster itself is unstable."
                            ) from e
                        log.warning(
                            "worker died during task %d (%s), try %d of %d; re-queued on a new worker",
                            i,
                            _describe_task(tasks[i]),
                            attempts[i],
                            self.config.max_attempts,
                        )
                        pending.appendleft(i)
                        continue
                    if status == "error":
                        raise value.rebuild()
                    yield Completed(i, value, attempts[i])
            finished = True
        finally:
            if not finished:
                # Stop the tasks still running (their partial output stays resumable).
                for s in list(busy):
                    self._retire(s)
            for s in ready_slots:
                if self._actors[s] is not None:
                    self._actors[s].clear.remote()

    def _retire(self, slot: int) -> None:
        actor = self._actors[slot]
        if actor is not None:
            ray.kill(actor, no_restart=True)
        self._actors[slot] = None

    def close(self) -> None:
        """Kill this executor's actors, and stop Ray if this executor started it."""
        if ray.is_initialized():
            for s in range(len(self._actors)):
                self._retire(s)
        self._actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def _describe_task(task: Any) -> str:
    describe = getattr(task, "describe", None)
    return describe() if callable(describe) else type(task).__name__
