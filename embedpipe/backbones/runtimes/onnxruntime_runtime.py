"""The ``onnxruntime`` runtime: the module exported to ONNX by the torch exporter, run by ONNX
Runtime's CPU execution provider with every graph optimisation on.

``pip install 'embedpipe[onnx]'``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embedpipe.backbones.runtimes.base import InputSpec, RunFn, Runtime, register_runtime


@register_runtime("onnxruntime")
class OnnxRuntime(Runtime):
    """ONNX Runtime on the CPU, float32."""

    module = "onnxruntime"
    distribution = "onnxruntime"
    extra = "onnx"
    precisions = ("fp32",)
    suffix = "model.onnx"
    file_per_precision = True

    def available(self) -> bool:
        return super().available() and _importable("onnx")

    def convert(self, module: Any, example: Sequence[Any], spec: InputSpec, path: Path) -> None:
        import torch

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                module,
                tuple(example),
                str(path),
                input_names=spec.names,
                output_names=["features"],
                dynamic_axes={**spec.dynamic_axes(), "features": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )

    def load(self, path: Path, precision: str) -> RunFn:
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}  # the exporter drops unused inputs

        def run(inputs: Mapping[str, Any]) -> Any:
            out = session.run(None, {k: v for k, v in inputs.items() if k in names})[0]
            return np.asarray(out, dtype=np.float32)

        return run


def _importable(name: str) -> bool:
    import importlib

    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001
        return False
    return True
