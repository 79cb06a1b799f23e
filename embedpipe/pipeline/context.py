"""What a running stage sees: its parameters, its inputs' cache entries, its datasets, a folder."""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .keys import resolve_path_param

if TYPE_CHECKING:
    from .cache import Cache
    from .datasets import DatasetHandle
    from .executor import RunExecutor
    from .kinds import Params
    from .pipeline import Pipeline

log = logging.getLogger("embedpipe.pipeline")


@dataclass
class Entry:
    """A complete cache entry of an upstream stage."""

    name: str
    kind: str
    key: str
    path: Path
    meta: dict[str, Any]
    dataset: DatasetHandle | None = None  # for encode entries: the dataset they encoded

    @property
    def outputs(self) -> dict[str, Any]:
        return self.meta.get("outputs", {})

    def file(self, output: str) -> Path:
        """The path of a file output (``outputs[output]`` is relative to the entry folder)."""
        rel = self.outputs.get(output)
        if not isinstance(rel, str):
            raise ConfigError(
                f"stage {self.name!r} ({self.kind}) has no file output {output!r}; outputs: {sorted(self.outputs)}."
            )
        return self.path / rel


@dataclass
class StageContext:
    """Handed to a stage's run function.

    A run function writes its files into ``out`` (a temporary folder, renamed into the cache
    when the function returns) and returns a JSON-able dict of outputs: file names relative to
    ``out`` and small summaries (counts, metrics). Downstream stages read them through
    :class:`Entry`.
    """

    name: str
    kind: str
    key: str
    params: Params
    seed: int
    out: Path
    inputs: dict[str, list[Entry]]
    datasets: dict[str, DatasetHandle]
    cache: Cache
    pipeline: Pipeline
    progress: bool = True
    counters: dict[str, int] = field(default_factory=dict)
    executor: RunExecutor | None = None  # the run's executor (started on first use)

    def input(self, role: str) -> Entry | None:
        entries = self.inputs.get(role) or []
        return entries[0] if entries else None

    def require(self, role: str) -> Entry:
        e = self.input(role)
        if e is None:
            raise ConfigError(f"stage {self.name!r} ({self.kind}) needs input {role!r}.")
        return e

    def path_param(self, value: str | None) -> str | None:
        """A path-like parameter resolved against the pipeline file's folder."""
        return None if value is None else resolve_path_param(value, self.pipeline.base_dir)

    def seed_torch(self) -> None:
        """Seed torch's generators (stages that use torch call this after importing it)."""
        import torch

        torch.manual_seed(self.seed)


def seed_everything(seed: int) -> None:
    """Seed Python's and NumPy's global generators, and torch's when it is loaded."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
