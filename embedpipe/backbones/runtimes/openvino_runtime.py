"""The ``openvino`` runtime: the module converted with ``openvino.convert_model`` (OpenVINO IR,
float32 weights), compiled for the CPU at the requested inference precision.

``pip install 'embedpipe[openvino]'``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from embedpipe.backbones.runtimes.base import InputSpec, RunFn, Runtime, register_runtime

_HINTS = {"fp32": "f32", "bf16": "bf16"}


@register_runtime("openvino")
class OpenVINORuntime(Runtime):
    """OpenVINO on the CPU; ``bf16`` is its inference precision hint (native on CPUs with
    AVX-512 BF16 or AMX)."""

    module = "openvino"
    distribution = "openvino"
    extra = "openvino"
    precisions = ("fp32", "bf16")
    suffix = "model.xml"
    file_per_precision = False

    def convert(self, module: Any, example: Sequence[Any], spec: InputSpec, path: Path) -> None:
        import openvino as ov
        import torch

        shapes = []
        for x, axes in zip(example, spec.dynamic, strict=True):
            dims = [-1 if a in axes else int(n) for a, n in enumerate(x.shape)]
            shapes.append(ov.PartialShape(dims))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notices
            model = ov.convert_model(module, example_input=tuple(example), input=shapes)
        # float32 weights on disk: the precision is chosen when compiling, not here.
        ov.save_model(model, str(path), compress_to_fp16=False)

    def load(self, path: Path, precision: str) -> RunFn:
        import numpy as np
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        compiled = core.compile_model(str(path), "CPU", config)
        request = compiled.create_infer_request()

        def run(inputs: Mapping[str, Any]) -> Any:
            request.infer(list(inputs.values()))
            return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

        return run
