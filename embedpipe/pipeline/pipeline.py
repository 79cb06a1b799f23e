"""The :class:`Pipeline`: a validated graph of datasets and stages, from YAML or built in code."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .datasets import DatasetHandle
from .graph import topological_order, upstream_closure
from .keys import content_param, key_inputs, stage_key
from .spec import PipelineSpec, Stage, _Lines, build_stages, parse_spec, read_yaml

if TYPE_CHECKING:
    from ..executors import ExecutorConfig
    from .runner import RunResult
    from .status import StageStatus


@dataclass(frozen=True)
class StageKey:
    """A stage's key and what it was made of (kept in the cache to explain staleness)."""

    name: str
    kind: str
    key: str
    key_inputs: dict[str, Any]
    input_names: dict[str, list[str]]
    dataset_names: dict[str, str]

    def record(self) -> dict[str, Any]:
        """The fields but ``name`` (the cache's record of the stage, under its name)."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "name"}


class Pipeline:
    """Named datasets and stages, in a graph.

    Load one from a YAML file with :meth:`from_file`, or build one in code::

        p = Pipeline("digits-demo", seed=0)
        p.dataset("digits", "builtin:digits")
        p.stage("features", "encode", dataset="digits", backbone="torchvision:mobilenet_v2")
        p.stage("logreg", "train", inputs={"train": "features"}, head="logreg")
        result = p.run(cache="cache")

    Parameters
    ----------
    name
        Names the pipeline's record in the cache (``status`` diffs against it) and its runs.
    seed
        Default seed of every stage (a stage's own ``seed`` overrides it).
    base_dir
        Relative dataset paths and path parameters are relative to it (a file's folder).
    executor
        Where encode stages with ``n_shards`` / ``shard_size`` run their shards, and index
        stages over sharded stores add them: ``"local"``, ``"ray"`` or a mapping such as
        ``{"name": "ray", "num_workers": 4}`` (see :mod:`embedpipe.pipeline.executor`).
        Never part of a stage key.
    """

    def __init__(
        self,
        name: str,
        *,
        seed: int = 0,
        base_dir: str | Path = ".",
        description: str = "",
        cache: str | None = None,
        runs_dir: str | None = None,
        executor: str | dict[str, Any] | None = None,
    ) -> None:
        self._raw: dict[str, Any] = {
            "name": name,
            "description": description,
            "seed": seed,
            "cache": cache,
            "runs_dir": runs_dir,
            "executor": executor,
            "datasets": {},
            "stages": {},
        }
        self.base_dir = Path(base_dir)
        self.file: Path | None = None
        self._origin = f"pipeline {name!r}"
        self._lines: _Lines | None = None
        self._built: tuple[PipelineSpec, dict[str, Stage]] | None = None
        self._handles: dict[str, DatasetHandle] = {}
        self._keys: dict[str, StageKey] = {}

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Pipeline:
        """Read and validate a pipeline YAML file.

        Raises
        ------
        ConfigError
            Naming the file, line, stage and key of the first problem found.
        """
        path = Path(path)
        data, lines = read_yaml(path)
        spec = parse_spec(data, str(path), lines)
        p = cls(spec.name or path.stem, seed=spec.seed, base_dir=path.resolve().parent)
        p._raw = data if spec.name else {**data, "name": path.stem}
        p.file = path
        p._origin = str(path)
        p._lines = lines
        p._build()
        return p

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | Path = ".") -> Pipeline:
        """Validate a pipeline given as a mapping (the YAML file's content)."""
        spec = parse_spec(data)
        p = cls(spec.name or "pipeline", seed=spec.seed, base_dir=base_dir)
        p._raw = copy.deepcopy({**data, "name": spec.name or "pipeline"})
        p._build()
        return p

    def dataset(self, name: str, source: str, **options: Any) -> str:
        """Declare a dataset (see :func:`embedpipe.data.open_source`); returns its name."""
        self._raw["datasets"][name] = {"source": source, **options}
        self._invalidate()
        return name

    def stage(
        self,
        name: str,
        kind: str,
        *,
        inputs: dict[str, str | list[str]] | None = None,
        dataset: str | None = None,
        datasets: dict[str, str] | None = None,
        seed: int | None = None,
        matrix: dict[str, list[Any]] | None = None,
        **params: Any,
    ) -> str:
        """Add a stage; keyword arguments are its parameters. Returns its name (use it as input).

        ``matrix`` expands it into one stage per combination of values (see
        :mod:`embedpipe.pipeline.matrix`).
        """
        st: dict[str, Any] = {"kind": kind, "params": params}
        if matrix:
            st["matrix"] = matrix
        if inputs:
            st["inputs"] = inputs
        if dataset is not None:
            st["dataset"] = dataset
        if datasets:
            st["datasets"] = datasets
        if seed is not None:
            st["seed"] = seed
        self._raw["stages"][name] = st
        self._invalidate()
        return name

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as the mapping a YAML file would hold."""
        return copy.deepcopy({k: v for k, v in self._raw.items() if v not in (None, "")})

    def _invalidate(self) -> None:
        self._built = None
        self._keys = {}
        self._handles = {}

    def _build(self) -> tuple[PipelineSpec, dict[str, Stage]]:
        if self._built is None:
            spec = parse_spec(self._raw, self._origin, self._lines)
            stages = build_stages(spec, self._origin, self._lines)
            self._built = (spec, stages)
        return self._built

    # ---- views --------------------------------------------------------------------------
    @property
    def spec(self) -> PipelineSpec:
        return self._build()[0]

    @property
    def name(self) -> str:
        return self.spec.name or "pipeline"

    @property
    def stages(self) -> dict[str, Stage]:
        """Validated stages by name, in file order."""
        return self._build()[1]

    @property
    def datasets(self) -> dict[str, DatasetHandle]:
        if not self._handles:
            self._handles = {
                n: DatasetHandle(n, d, self.base_dir) for n, d in self.spec.datasets.items()
            }
        return self._handles

    def executor_config(self, override: Any = None) -> ExecutorConfig | None:
        """The run's executor settings: the file's ``executor:`` with ``override`` on top.

        See :func:`embedpipe.pipeline.executor.resolve_executor`; ``None``: no executor.

        Raises
        ------
        ConfigError
            Naming the file, line and key ``executor`` (or the override) and what it accepts.
        """
        from .executor import resolve_executor

        line = self._lines.of(("executor",)) if self._lines is not None else None
        what = f"{self._origin}{f' line {line}' if line else ''}: key 'executor'"
        return resolve_executor(self.spec.executor, override, what=what)

    def branches(self, name: str) -> list[str]:
        """The stages ``name`` stands for: itself, or every branch of a matrix stage.

        Raises
        ------
        ConfigError
            When no stage has that name (with the stages as written).
        """
        if name in self.stages:
            return [name]
        found = [n for n, st in self.stages.items() if st.base == name]
        if not found:
            bases = list(dict.fromkeys(st.base for st in self.stages.values()))
            raise ConfigError(
                f"no stage {name!r} in pipeline {self.name!r}; stages: {', '.join(bases)}."
            )
        return found

    def check(self, names: list[str] | None = None) -> None:
        """Run each stage's ``check`` hook (a head's options against scikit-learn's own
        constraints...), so a bad value fails in one line before anything runs.

        :func:`run_pipeline` calls it for the stages it is about to build (a fully cached run
        imports no model library); call it yourself to check every stage.

        Raises
        ------
        ConfigError
            ``FILE line N: stage 'knn' (train): key 'params.options': head 'knn':
            n_neighbors='fifteen' is not allowed; n_neighbors must be an int in ...``.
        """
        from .spec import _where

        for n in names if names is not None else self.order():
            st = self.stages[n]
            if st.info.check is None:
                continue
            try:
                st.info.check(st)
            except ConfigError as e:
                where = _where(self._origin, self._lines, ("stages", st.base, "params"))
                raise ConfigError(f"{where}: {e}") from None

    def order(self, only: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """Stages in dependency order; with ``only``, just those stages and their upstream
        (a matrix stage's name stands for all its branches)."""
        order = topological_order(self.stages)
        if only:
            keep = upstream_closure(self.stages, [b for n in only for b in self.branches(n)])
            order = [n for n in order if n in keep]
        return order

    def resolve(self, path: str | None, default: Path) -> Path:
        """A path from the file (relative to its folder), or ``default``."""
        if path is None:
            return default
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    # ---- keys ---------------------------------------------------------------------------
    def key(self, name: str) -> StageKey:
        """The key of stage ``name`` (computing its upstream keys and dataset digests)."""
        if name in self._keys:
            return self._keys[name]
        stages = self.stages
        if name not in stages:
            raise ConfigError(f"no stage {name!r} in {self._origin}; stages: {', '.join(stages)}.")
        for n in self.order([name]):
            if n in self._keys:
                continue
            st = stages[n]
            params = st.params.key_params()
            for field in st.info.path_params:
                if isinstance(params.get(field), str):
                    params[field] = content_param(params[field], self.base_dir)
            inputs = {role: [self._keys[u].key for u in ups] for role, ups in st.inputs.items()}
            datasets = {role: self.datasets[ds].digest for role, ds in st.datasets.items()}
            ki = key_inputs(
                kind=st.kind,
                version=st.info.version,
                params=params,
                inputs=inputs,
                datasets=datasets,
                seed=st.seed,
                input_names=dict(st.inputs) if st.info.names_in_key else None,
            )
            self._keys[n] = StageKey(
                n, st.kind, stage_key(ki), ki, dict(st.inputs), dict(st.datasets)
            )
        return self._keys[name]

    def keys(self, only: list[str] | tuple[str, ...] | None = None) -> dict[str, StageKey]:
        """Keys of every stage (or of ``only`` and their upstream), in dependency order."""
        return {n: self.key(n) for n in self.order(only)}

    # ---- actions ------------------------------------------------------------------------
    def run(self, cache: str | Path | None = None, **kw: Any) -> RunResult:
        """Run the pipeline; see :func:`embedpipe.pipeline.run_pipeline`."""
        from .runner import run_pipeline

        return run_pipeline(self, cache=cache, **kw)

    def status(self, cache: str | Path | None = None) -> list[StageStatus]:
        """What is cached and what is stale, and why; see :func:`embedpipe.pipeline.pipeline_status`."""
        from .status import pipeline_status

        return pipeline_status(self, cache=cache)

    def dag(self) -> str:
        """The graph as text; see :func:`embedpipe.pipeline.render_dag`."""
        from .dag import render_dag

        return render_dag(self)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, stages={list(self.stages)})"


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file (see :meth:`Pipeline.from_file`)."""
    return Pipeline.from_file(path)
