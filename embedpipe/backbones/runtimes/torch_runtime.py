"""The ``torch`` runtime: eager PyTorch, the encoders' own forward (nothing to convert)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedpipe.backbones.runtimes.base import InputSpec, RunFn, Runtime, register_runtime


@register_runtime("torch")
class TorchRuntime(Runtime):
    """Eager PyTorch: the reference every other runtime is measured against."""

    module = "torch"
    distribution = "torch"
    extra = ""
    precisions = ("fp32", "bf16", "fp16")

    def convert(self, module: Any, example: Any, spec: InputSpec, path: Path) -> None:
        raise NotImplementedError("the torch runtime runs the module itself")

    def load(self, path: Path, precision: str) -> RunFn:
        raise NotImplementedError("the torch runtime runs the module itself")
