"""The executor settings, and the one parser of every way they are given.

A pipeline file's ``executor:`` (a name or a mapping), the CLI flags (``--executor``,
``--ray-address``, ``--executor-workers``) and API arguments (a name, a dict, an
:class:`ExecutorConfig`) all go through :func:`parse_executor`. It imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError

#: ``executor: none`` (or ``--executor none``): no executor, even if a file names one.
NO_EXECUTOR = "none"


def _known() -> list[str]:
    from .registry import EXECUTORS

    return list(EXECUTORS)


def _either(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return " or ".join(quoted) if len(quoted) <= 2 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


class ExecutorConfig(BaseModel):
    """Where and how sharded work runs.

    Parameters
    ----------
    name
        ``"local"`` (default: in this process, no extra dependency), ``"ray"``
        (``pip install embedpipe[ray]``) or a plugin's executor kind.
    address
        Ray only. ``None``: join the Ray instance this process already started, else start a
        private local one (stopped on :meth:`Executor.close`); ``"auto"``: join the cluster
        started with ``ray start`` on this machine; ``"ray://host:10001"``: a remote cluster.
    num_workers
        Worker processes, each loading the model once. Ray: actors, by default as many as
        the cluster's CPUs (or GPUs, with ``gpus_per_worker``) hold. Local: ``None`` or 1
        runs tasks in this process; N > 1 starts N processes.
    cpus_per_worker
        Ray only: CPUs reserved per worker; it also sets the worker's torch/FAISS threads.
        Workers always reserve CPUs explicitly, so they can never claim every CPU of a node.
    gpus_per_worker
        GPUs per worker (``1`` for one GPU each; ``0`` runs on CPU). Ray: ``num_gpus`` of
        each actor. Local: one worker process per visible GPU (at most ``num_workers``),
        each seeing only its own through ``CUDA_VISIBLE_DEVICES``.
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

    name: str = "local"
    address: str | None = None
    num_workers: int | None = Field(default=None, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)
    loader_workers: int | None = Field(default=None, ge=0)

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        known = _known()
        if v not in known:
            from ..registry import did_you_mean

            raise ValueError(
                f"unknown executor {v!r}{did_you_mean(v, known)}; use {_either(known)}"
            )
        return v

    @classmethod
    def parse(
        cls, value: ExecutorConfig | str | Mapping[str, Any] | None = None, **overrides: Any
    ) -> ExecutorConfig:
        """A config from a name, a mapping or a config (``None``: local), with keyword
        overrides (``None`` values ignored, so CLI flags pass straight in).

        Raises
        ------
        ConfigError
            Naming the bad key and what it accepts.
        """
        if value is None or isinstance(value, ExecutorConfig):
            data: dict[str, Any] = {} if value is None else value.model_dump(exclude_unset=True)
        else:
            data = _as_dict(value, "executor")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return _build(data, None)

    def torch_threads(self) -> int:
        """Threads a worker's torch and FAISS may use: its reserved CPUs, at least one."""
        return max(1, int(self.cpus_per_worker))


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise ConfigError(
        f"{what}: expected an executor name ({', '.join([*_known(), NO_EXECUTOR])}) or a mapping "
        f"such as {{name: ray, num_workers: 2}}, found {type(value).__name__} {value!r}."
    )


def _build(data: dict[str, Any], what: str | None) -> ExecutorConfig:
    """The one place executor settings are validated."""
    try:
        return ExecutorConfig(**data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'executor'}: {err['msg']}"
            for err in e.errors()
        )
        msg = (
            f"bad executor settings {data}: {problems}. Accepted keys: "
            f"{', '.join(ExecutorConfig.model_fields)} (name is one of {', '.join(_known())})."
        )
        raise ConfigError(f"{what}: {msg}" if what else msg) from None


def _complete(data: dict[str, Any], what: str) -> ExecutorConfig | None:
    if data.get("name") == NO_EXECUTOR:
        return None
    if "name" not in data:
        if data.get("address") is None:
            raise ConfigError(
                f"{what}: {data} does not say which executor; add name: local or name: ray."
            )
        data["name"] = "ray"  # only Ray has addresses
    return _build(data, what)


def parse_executor(
    value: Any, override: Any = None, *, what: str = "key 'executor'"
) -> ExecutorConfig | None:
    """The executor settings of a run: ``value`` (e.g. a file's ``executor:``) with
    ``override``'s keys on top; ``None`` when the run has no executor.

    Parameters
    ----------
    value
        ``None`` or ``"none"`` (no executor), a name, a mapping, or an :class:`ExecutorConfig`.
        A mapping without ``name`` but with an ``address`` is a Ray executor (only Ray has
        addresses); any other mapping must name its executor.
    override
        ``None`` (keep ``value``), ``"none"`` (no executor), a name, a mapping of the keys to
        change (e.g. from CLI flags, see :func:`executor_flags`), or a config (replaces it).
    what
        Where ``value`` comes from, prefixed to error messages (``"pipeline.yaml line 3: key
        'executor'"``).

    Raises
    ------
    ConfigError
        Naming where the value came from, the bad key and what it accepts.

    Examples
    --------
    >>> parse_executor("ray", {"num_workers": 2}).num_workers
    2
    >>> parse_executor({"name": "ray"}, "none") is None
    True
    >>> parse_executor(None, {"address": "auto"}).name
    'ray'
    """
    if override is None:
        if value is None or isinstance(value, ExecutorConfig):
            return value
        return _complete(_as_dict(value, what), what)
    if isinstance(override, ExecutorConfig):
        return override
    over = _as_dict(override, "executor override")
    if over.get("name") == NO_EXECUTOR:
        return None
    if value is None or value == NO_EXECUTOR:
        return _complete(over, "executor override")
    if isinstance(value, ExecutorConfig):
        base = value.model_dump(exclude_unset=True) | {"name": value.name}
    else:
        base = _as_dict(value, what)
    return _complete({**base, **over}, f"{what} (with the override {over})")


def executor_flags(
    name: str | None = None, address: str | None = None, num_workers: int | None = None
) -> dict[str, Any] | None:
    """The executor keys CLI flags set (``--executor``, ``--ray-address``,
    ``--executor-workers``), for :func:`parse_executor`'s ``override``; ``None``: no flag.

    Examples
    --------
    >>> executor_flags(None, "auto", 2)
    {'address': 'auto', 'num_workers': 2}
    """
    over = {"name": name, "address": address, "num_workers": num_workers}
    return {k: v for k, v in over.items() if v is not None} or None
