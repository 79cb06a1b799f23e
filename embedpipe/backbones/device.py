"""Device and precision selection, autocast and batch transfer for encoders.

Measured on this project's CPU (AMD EPYC, AVX-512 with native BF16, torch 2.14), forward pass
only, best of N, with benchmarks/backbone_precision.py::

    idle machine, 2 threads          fp32 s   bf16 s   fp32/bf16
    mobilenet_v2 b64 224px            2.583    1.046     2.47
    minilm b64 40 tokens              0.362    0.201     1.81
    idle machine, 1 thread
    mobilenet_v2 b64 224px            4.802    1.968     2.44
    minilm b64 40 tokens              0.729    0.383     1.91
    busy machine (load 7.7), 1 thread
    mobilenet_v2 b64 224px            7.113    4.616     1.54
      + channels_last                 4.717    3.092     1.53
    minilm b64 40 tokens              1.868    1.019     1.83

bf16 is faster for both families, so ``"auto"`` considers it on CPUs with native BF16
(``avx512_bf16`` or ``amx_bf16``), for the families whose bf16 features stay faithful (below); without them PyTorch emulates bf16 (not measured here,
expected slower), so ``"auto"`` stays float32. Static word vectors (an embedding-bag sum) gain nothing and stay float32.

Fidelity of bf16 features to float32 ones, measured through embedpipe's encoders on real
inputs (``benchmarks/backbone_precision.py fidelity 300``: 300 MNIST digits upscaled by each
model's preprocessing, 300 Rotten Tomatoes snippets), cosine per item, min / mean:

    CNN  MobileNetV2 (ImageNet weights)            0.9929 / 0.9968
         the same on all 5,000 MNIST digits        0.9878 / 0.9968 (1 item below 0.99)
    ViT  timm vit_small_patch16_224 (random)       0.9999 / 0.9999
    text MiniLM (real weights)                     0.9999 / 1.0000
    CLIP ViT-B/32 shape, image / text (random)     0.9999 / 0.9999

A family whose minimum fell below 0.99 gets float32 from ``"auto"`` on CPU
(:data:`CPU_BF16_FAITHFUL`): CNNs. Transformers (bf16 weights) keep bf16. ``precision="bf16"``
still gives a CNN the 2.4x faster path when asked for.
channels_last also helps CNNs on CPU (idle, 1 thread: fp32 4.01 -> 1.96 s, bf16 1.96 ->
1.07 s), so CNN encoders use it on CPU as well as on CUDA.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import torch

from embedpipe.errors import Arg, ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
PrecisionArg = Literal["auto", "fp32", "bf16", "fp16"]
Family = Literal["cnn", "transformer", "embedding"]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Whether bf16 autocast beat fp32 on a CPU with native BF16 (numbers in the module docstring).
CPU_BF16_SPEEDUP: dict[str, bool] = {"cnn": True, "transformer": True, "embedding": False}
# Whether the family's bf16 features kept a cosine >= 0.99 to fp32 on every real input
# measured (module docstring): CNNs did not (MobileNetV2 on 5,000 MNIST digits: min 0.988).
CPU_BF16_FAITHFUL: dict[str, bool] = {"cnn": False, "transformer": True, "embedding": True}
# Whether ``"auto"`` picks bf16 on a native-bf16 CPU: faster *and* faithful. (The name is
# historical: it once recorded speed alone.)
CPU_BF16_FASTER: dict[str, bool] = {
    f: CPU_BF16_SPEEDUP[f] and CPU_BF16_FAITHFUL[f] for f in CPU_BF16_SPEEDUP
}


def select_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve a device request.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
        ``"mps"`` or a :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        If the device is malformed or not available on this machine.

    Examples
    --------
    >>> select_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(
                f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
            ) from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(dev)!r} requested but CUDA is not available here; use ",
                Arg("device", "cpu"),
                " or 'auto'",
            )
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ConfigError(
                f"device {str(dev)!r} does not exist: this machine has {n} CUDA device(s) "
                f"(cuda:0..cuda:{n - 1})"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("device 'mps' requested but MPS is not available; use 'cpu'")
    elif dev.type != "cpu":
        raise ConfigError(
            f"unsupported device {str(dev)!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    return dev


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), so bf16 autocast pays.

    Without native support PyTorch still runs bf16 autocast, but by emulation, slower than
    float32.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if "AVX512" not in capability and "AMX" not in capability:
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_precision(
    precision: str = "auto",
    device: str | torch.device = "cpu",
    family: Family | None = None,
) -> Precision:
    """Turn a precision request into the precision ``encode`` will use on ``device``.

    Parameters
    ----------
    precision
        ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``. ``"fp32"`` always means float32.
    device
        The device the model runs on.
    family
        ``"cnn"``, ``"transformer"`` or ``"embedding"``: ``"auto"`` on CPU picks bf16 only
        for families measured faster in bf16 whose bf16 features stayed within cosine 0.99
        of float32 (see :data:`CPU_BF16_FASTER`): transformers, not CNNs.

    Returns
    -------
    str
        ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    Raises
    ------
    ConfigError
        For an unknown value, fp16 on CPU, or bf16 on a GPU without bf16 support.

    Examples
    --------
    >>> resolve_precision("fp32", "cpu", "cnn")
    'fp32'
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {list(PRECISIONS)}")
    dev = torch.device(device)
    if precision == "fp32":
        return "fp32"
    if dev.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if precision == "auto":
            if family == "embedding":
                return "fp32"
            return "bf16" if bf16_ok else "fp16"
        if precision == "bf16" and not bf16_ok:
            raise ConfigError(
                f"{dev} does not support bf16; use ",
                Arg("precision", "fp16"),
                " or 'fp32' (or 'auto')",
            )
        return precision  # type: ignore[return-value]
    if dev.type == "cpu":
        if precision == "auto":
            faster = CPU_BF16_FASTER.get(family or "", False)
            return "bf16" if faster and cpu_has_native_bf16() else "fp32"
        if precision == "fp16":
            raise ConfigError(
                "precision 'fp16' needs a CUDA device; on CPU use 'bf16', 'fp32' or 'auto'"
            )
        return "bf16"
    # mps and others: float32 unless asked explicitly.
    return "fp32" if precision == "auto" else precision  # type: ignore[return-value]


def autocast(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager:
    """A context manager running the enclosed ops at ``precision`` on ``device``.

    ``"fp32"`` is a no-op context; ``"bf16"``/``"fp16"`` enable :func:`torch.autocast`.

    Examples
    --------
    >>> with autocast("cpu", "fp32"):
    ...     y = torch.ones(2) * 2
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise ConfigError(f"unknown precision {precision!r}; use 'fp32', 'bf16' or 'fp16'")
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def move_batch(batch: Any, device: torch.device, *, channels_last: bool = False) -> Any:
    """Copy a batch (tensor, or mapping/list/tuple of tensors) to ``device``.

    Copies are non-blocking: the engine pins host memory, so CUDA copies overlap compute.
    With ``channels_last``, 4-D tensors are laid out NHWC (faster convolutions).
    """
    if isinstance(batch, torch.Tensor):
        if channels_last and batch.dim() == 4:
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_batch(v, device, channels_last=channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_batch(v, device, channels_last=channels_last) for v in batch)
    return batch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the enclosed code with torch's CPU RNG seeded, restoring the RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
