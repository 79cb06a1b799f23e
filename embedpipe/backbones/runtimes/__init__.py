"""Runtimes: where an encoder's forward runs — eager torch (the default), OpenVINO, ONNX
Runtime — chosen with ``load_backbone(..., runtime=...)`` (``--runtime``, pipeline
``runtime:``) and recorded in every store.

A runtime is one module of this package registering a :class:`Runtime` with
:func:`register_runtime`; :func:`with_runtime` puts an encoder on one. The converted model
is cached under ``<cache root>/runtimes`` keyed by (fingerprint, runtime, version,
precision); its fidelity to torch float32 is measured on the first batch (see
:mod:`embedpipe.backbones.runtimes.encoder`).

Importing this package imports no torch.

Examples
--------
>>> "openvino" in runtime_names() and "auto" in runtime_names()
True
>>> label_of("onnxruntime", "1.32.0", "fp32"), label_of("torch", "2.5", "bf16")
('fp32@onnxruntime-1.32.0', 'bf16')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The built-in runtimes, one module each (importing a module registers its runtime).
from embedpipe.backbones.runtimes import (  # noqa: F401
    onnxruntime_runtime,
    openvino_runtime,
    torch_runtime,
)
from embedpipe.backbones.runtimes.base import (
    CACHE_FOLDER,
    CALIBRATION_ITEMS,
    RUNTIMES,
    InputSpec,
    Runtime,
    cache_dir,
    installed_runtimes,
    register_runtime,
    runtime_names,
)

__all__ = [
    "CACHE_FOLDER",
    "CALIBRATION_ITEMS",
    "RUNTIMES",
    "InputSpec",
    "Runtime",
    "cache_dir",
    "installed_runtimes",
    "label_of",
    "pin_runtime",
    "register_runtime",
    "runtime_info",
    "runtime_label",
    "runtime_names",
    "with_runtime",
]


def label_of(runtime: str, version: str, precision: str) -> str:
    """The identity a store records in place of a bare precision: ``precision`` for torch
    (as every store before runtimes), ``precision@runtime-version`` for the others."""
    return precision if runtime == "torch" else f"{precision}@{runtime}-{version}"


def with_runtime(
    encoder: Any,
    runtime: str,
    precision: str = "auto",
    *,
    min_cosine: float | None = None,
    cache_root: str | Path | None = None,
) -> Any:
    """``encoder`` with its forward on ``runtime`` (``"torch"``: ``encoder`` itself).

    ``"auto"`` on a GPU keeps torch. Raises a one-line
    :class:`~embedpipe.errors.ConfigError` for an unknown runtime, one that is not installed,
    or an encoder with no torch module to run.
    """
    if runtime not in RUNTIMES and runtime != "auto":
        RUNTIMES.get(runtime)  # the NotFoundError with its "did you mean"
    if (
        getattr(encoder, "requested", None) == runtime
        and hasattr(encoder, "inner")
        and min_cosine in (None, encoder.min_cosine)
    ):
        return encoder  # already on that runtime (and maybe calibrated: keep it)
    inner = getattr(encoder, "inner", encoder)
    if runtime == "torch":
        return inner
    import torch

    from embedpipe.backbones.runtimes.encoder import DEFAULT_MIN_COSINE, RuntimeEncoder
    from embedpipe.errors import Arg, ConfigError

    if (
        not isinstance(getattr(inner, "model", None), torch.nn.Module)
        or getattr(inner, "family", None) == "embedding"  # word vectors: a lookup, no forward
    ):
        if runtime == "auto":
            return inner
        raise ConfigError(
            Arg("runtime", runtime),
            f": backbone {inner.spec.name!r} ({inner.spec.kind}) has no torch module to convert; use ",
            Arg("runtime", "torch"),
        )
    enc = RuntimeEncoder(
        inner,
        runtime,
        precision,
        min_cosine=DEFAULT_MIN_COSINE if min_cosine is None else min_cosine,
        cache_root=cache_root,
    )
    return enc.to(inner.device, precision)


def runtime_label(encoder: Any) -> str:
    """The identity of the features ``encoder`` computes (see :func:`label_of`); ``""`` while
    ``runtime="auto"`` has not chosen yet (it chooses on the first batch)."""
    if hasattr(encoder, "resolved") and hasattr(encoder, "info"):
        if not encoder.resolved:
            return ""
        info = encoder.info()
        return label_of(info["runtime"], info["runtime_version"], info["precision"])
    return str(encoder.precision)


def runtime_info(encoder: Any) -> dict[str, Any]:
    """What a store's provenance records about the runtime of ``encoder``."""
    if hasattr(encoder, "resolved") and hasattr(encoder, "info"):
        return dict(encoder.info())
    return {
        "runtime": "torch",
        "runtime_version": RUNTIMES.get("torch").version(),
        "precision": str(encoder.precision),
    }


def requested_runtime(encoder: Any) -> str:
    """The runtime ``encoder`` was asked to run on (``"auto"`` included); ``"torch"`` for a
    plain encoder."""
    return str(getattr(encoder, "requested", "torch"))


def torch_precision(encoder: Any) -> str:
    """The precision of ``encoder``'s torch forward (a runtime encoder's wrapped one)."""
    return str(getattr(encoder, "inner", encoder).precision)


def keep_torch(encoder: Any, reason: str) -> None:
    """Make an undecided ``runtime="auto"`` encoder keep torch at its torch precision,
    saying why (``reason``)."""
    encoder.pin("torch", torch_precision(encoder), reason=reason)


def pin_runtime(encoder: Any, label: str) -> None:
    """Make an undecided encoder use what ``label`` (a store's) names: ``runtime="auto"``
    takes its runtime and precision, a named runtime at ``precision="auto"`` its precision
    (when the label names that runtime). Anything else is left to the store's checks."""
    if not label or not hasattr(encoder, "pin") or getattr(encoder, "resolved", True):
        return
    from embedpipe.backbones.runtimes.encoder import parse_label

    runtime, precision = parse_label(label.split("+")[0])
    if encoder.requested == "auto":
        if runtime == "torch" or RUNTIMES.get(runtime).available():
            encoder.pin(runtime, precision)
    elif runtime == encoder.requested and encoder.precision_request == "auto":
        encoder.pin(runtime, precision)
