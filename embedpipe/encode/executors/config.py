"""The executor settings, as a pipeline file or the CLI gives them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import ConfigError

ExecutorName = Literal["local", "ray"]
EXECUTOR_NAMES: tuple[str, ...] = ("local", "ray")


class ExecutorConfig(BaseModel):
    """Where and how sharded work runs.

    Parameters
    ----------
    name
        ``"local"`` (default: in this process, no extra dependency) or ``"ray"``
        (``pip install embedpipe[ray]``).
    address
        Ray only. ``None``: join the Ray instance this process already started, else start a
        private local one (stopped on :meth:`Executor.close`); ``"auto"``: join the cluster
        started with ``ray start`` on this machine; ``"ray://host:10001"``: a remote cluster.
    num_workers
        Ray only: worker actors (each loads the model once). Default: as many as the cluster's
        CPUs (or GPUs, with ``gpus_per_worker``) hold.
    cpus_per_worker
        Ray only: CPUs reserved per worker; it also sets the worker's torch/FAISS threads.
        Workers always reserve CPUs explicitly, so they can never claim every CPU of a node.
    gpus_per_worker
        Ray only: GPUs per worker (``1`` for one GPU each; ``0`` runs on CPU).
    max_attempts
        Ray only: times a shard is tried when its worker process dies (killed, OOM, node
        lost) before the encode fails. Errors raised by the work itself are never retried.
    loader_workers
        DataLoader decoding processes inside each worker; ``None``: the engine's default for
        the local executor, ``0`` (decode in the worker) on Ray, whose workers already fill
        the CPUs.

    Examples
    --------
    >>> ExecutorConfig.parse("ray").name
    'ray'
    >>> ExecutorConfig.parse({"name": "ray", "num_workers": 2}).num_workers
    2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ExecutorName = "local"
    address: str | None = None
    num_workers: int | None = Field(default=None, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    loader_workers: int | None = Field(default=None, ge=0)

    @classmethod
    def parse(
        cls, value: ExecutorConfig | str | Mapping[str, Any] | None = None, **overrides: Any
    ) -> ExecutorConfig:
        """Build a config from a name (``"ray"``), a dict (a pipeline file's ``executor:``
        block) or a config, with keyword overrides (e.g. CLI flags; ``None`` values ignored).

        Raises
        ------
        ConfigError
            Naming the bad key and what it accepts.
        """
        if value is None:
            data: dict[str, Any] = {}
        elif isinstance(value, ExecutorConfig):
            data = value.model_dump(exclude_unset=True)
        elif isinstance(value, str):
            data = {"name": value}
        elif isinstance(value, Mapping):
            data = dict(value)
        else:
            raise ConfigError(
                f"executor must be a name ({', '.join(EXECUTOR_NAMES)}) or a mapping such as "
                f"{{'name': 'ray', 'num_workers': 2}}, not {type(value).__name__}."
            )
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'executor'}: {err['msg']}"
                for err in e.errors()
            )
            raise ConfigError(
                f"bad executor settings {data}: {problems}. Accepted keys: "
                f"{', '.join(cls.model_fields)} (name is one of {', '.join(EXECUTOR_NAMES)})."
            ) from None

    def torch_threads(self) -> int:
        """Threads a worker's torch and FAISS may use: its reserved CPUs, at least one."""
        return max(1, int(self.cpus_per_worker))
