"""What a runtime is: the :class:`Runtime` interface, its registry and the conversion cache.

A runtime runs an encoder's torch module (``encoder.model``: a collated batch of
preprocessed tensors → ``[B, dim]`` features) somewhere else than eager PyTorch: OpenVINO,
ONNX Runtime. Each runtime is one module of this package that registers a :class:`Runtime`
subclass with :func:`register_runtime`; third-party runtimes register through the
``embedpipe.runtimes`` entry-point group.

This module imports no torch and no runtime library.

Examples
--------
>>> sorted(RUNTIMES)[:2]
['onnxruntime', 'openvino']
>>> RUNTIMES.get("openvno")
Traceback (most recent call last):
...
embedpipe.errors.NotFoundError: unknown runtime 'openvno'; did you mean 'openvino'? Known: onnxruntime, openvino, torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from embedpipe.errors import Arg, ConfigError
from embedpipe.registry import Registry

#: Items of the first batch that calibrate: each candidate (and torch float32, the reference)
#: runs on them once. Enough rows to see a runtime's systematic error (a bf16 model that strays
#: does so on every row) at a fixed cost: a 64-item calibration was most of a 512-photo encode
#: (benchmarks/results/encode-runtimes.md, 2026-12-07 14:24).
CALIBRATION_ITEMS = 16

#: What a runtime's loaded model does: ``inputs`` (``{name: float32 / int64 array}``, in the
#: order of the collated batch) → float32 ``[B, dim]`` features.
RunFn = Callable[[Mapping[str, Any]], Any]

#: Where converted models live under the cache root (``$EMBEDPIPE_CACHE``, else ``./cache``).
CACHE_FOLDER = "runtimes"
CACHE_ENV = "EMBEDPIPE_CACHE"


class Runtime:
    """One way to run a torch module's forward. Subclasses set the class attributes and
    implement :meth:`convert` and :meth:`load`.

    Attributes
    ----------
    name
        The runtime's name (``runtime=`` value).
    module
        The Python module it needs (``"openvino"``); ``available`` imports nothing else.
    extra
        The embedpipe extra that installs it (``pip install embedpipe[openvino]``).
    precisions
        The compute precisions it offers on a CPU (``"fp32"``, ``"bf16"``).
    suffix
        The converted model's file name.
    """

    name: ClassVar[str] = ""
    module: ClassVar[str] = ""
    distribution: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    suffix: ClassVar[str] = "model"
    #: Whether the converted file depends on the compute precision (else one file serves all).
    file_per_precision: ClassVar[bool] = False

    def available(self) -> bool:
        """Whether the runtime's package is installed (imported on the first call)."""
        try:
            importlib.import_module(self.module)
        except Exception:  # noqa: BLE001 - a broken install counts as absent
            return False
        return True

    def version(self) -> str:
        """The installed version (short form: ``"2026.4.1"``)."""
        try:
            v = md.version(self.distribution or self.module)
        except md.PackageNotFoundError:
            v = str(getattr(importlib.import_module(self.module), "__version__", "unknown"))
        return v.split("-")[0]

    def require(self) -> None:
        """Raise a one-line :class:`ConfigError` when the runtime is not installed."""
        if not self.available():
            raise ConfigError(
                Arg("runtime", self.name),
                f" needs the {self.module!r} package; install it with "
                f"pip install 'embedpipe[{self.extra}]', or use ",
                Arg("runtime", "torch"),
                ".",
            )

    def convert(self, module: Any, example: Sequence[Any], spec: InputSpec, path: Path) -> None:
        """Convert ``module`` (a torch module taking ``*example``) into the file ``path``."""
        raise NotImplementedError

    def load(self, path: Path, precision: str) -> RunFn:
        """Load the converted file to compute at ``precision`` on the CPU."""
        raise NotImplementedError


class InputSpec:
    """The inputs of an exported forward: names, and which axes vary between batches.

    Images vary in the batch axis only (the preprocessing fixes the size); token batches in
    the batch and sequence axes.

    Examples
    --------
    >>> s = InputSpec(["input_ids", "attention_mask"], dynamic=[(0, 1), (0, 1)])
    >>> s.dynamic_axes()["input_ids"]
    {0: 'batch', 1: 'sequence'}
    """

    def __init__(self, names: Sequence[str], dynamic: Sequence[tuple[int, ...]]) -> None:
        self.names = list(names)
        self.dynamic = [tuple(d) for d in dynamic]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        labels = {0: "batch", 1: "sequence"}
        return {
            n: {a: labels.get(a, f"axis{a}") for a in axes}
            for n, axes in zip(self.names, self.dynamic, strict=True)
        }


R = TypeVar("R", bound=type[Runtime])

RUNTIMES: Registry[Runtime] = Registry(
    "runtime", group="embedpipe.runtimes", builtins="embedpipe.backbones.runtimes"
)


def register_runtime(name: str) -> Callable[[R], R]:
    """Register a :class:`Runtime` subclass under ``name`` (a class decorator).

    Examples
    --------
    >>> @register_runtime("doc-runtime")
    ... class DocRuntime(Runtime):
    ...     module = "json"
    >>> RUNTIMES.get("doc-runtime").available(), RUNTIMES.get("doc-runtime").name
    (True, 'doc-runtime')
    >>> RUNTIMES.unregister("doc-runtime")
    """

    def add(cls: R) -> R:
        cls.name = name
        RUNTIMES.register(name, cls())
        return cls

    return add


def runtime_names() -> tuple[str, ...]:
    """The values ``runtime=`` accepts: ``"auto"`` and every registered runtime.

    Examples
    --------
    >>> runtime_names()[:4]
    ('auto', 'onnxruntime', 'openvino', 'torch')
    """
    return ("auto", *RUNTIMES)


def installed_runtimes() -> list[str]:
    """The registered runtimes whose package is installed (``torch`` always)."""
    return [name for name, rt in RUNTIMES.items() if rt.available()]


# ---- the conversion cache ---------------------------------------------------------------------
def cache_dir(root: str | Path | None = None) -> Path:
    """The folder of converted models: ``<root>/runtimes`` (root: ``$EMBEDPIPE_CACHE``, else
    ``./cache``, the pipelines' cache root rule).

    Examples
    --------
    >>> str(cache_dir("somewhere"))
    'somewhere/runtimes'
    """
    base = Path(root) if root is not None else Path(os.environ.get(CACHE_ENV, "cache"))
    return base / CACHE_FOLDER


def cache_key(fingerprint: str, modality: str, runtime: Runtime, precision: str) -> str:
    """The cache entry of a converted model: backbone fingerprint and modality (the towers of
    a dual encoder share a fingerprint), runtime, its version and precision (``any`` for a
    runtime whose converted file serves every precision).

    Examples
    --------
    >>> rt = RUNTIMES.get("onnxruntime")
    >>> cache_key("ab12", "image", rt, "fp32") == f"onnxruntime-{rt.version()}/ab12-image-fp32"
    True
    """
    prec = precision if runtime.file_per_precision else "any"
    return f"{runtime.name}-{runtime.version()}/{fingerprint}-{modality}-{prec}"


def cached_model(
    folder: Path, runtime: Runtime, build: Callable[[Path], None], meta: dict[str, Any]
) -> tuple[Path, bool]:
    """The converted file in ``folder``, built by ``build(path)`` into a temporary folder that
    is renamed into place when it is complete (a crash leaves no half-written model).

    Returns
    -------
    (path, converted)
        ``converted`` is ``False`` when the cached file was reused.
    """
    path = folder / runtime.suffix
    if (folder / "meta.json").is_file() and path.is_file():
        return path, False
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build(tmp / runtime.suffix)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # not another process that won the race
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path, True
