"""An encoder whose forward runs on another runtime, chosen and checked on its first batch.

:class:`RuntimeEncoder` wraps a torch encoder (its ``preprocess``, ``collate``, spec and
fingerprint are the wrapped one's). On the first :meth:`~RuntimeEncoder.encode` call — the
calibration batch, the user's own first items — it converts the torch module (or loads the
converted file from the cache), runs the batch beside torch at float32 and measures the
minimum cosine of each row to torch's. A candidate below ``min_cosine`` is refused: a runtime
named explicitly raises a one-line :class:`~embedpipe.errors.ConfigError`; ``"auto"`` keeps
the fastest candidate that passed (torch passes by definition) and says why in ``reason``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from embedpipe.backbones.device import cpu_has_native_bf16, resolve_precision, select_device
from embedpipe.backbones.runtimes.base import (
    CALIBRATION_ITEMS,
    RUNTIMES,
    InputSpec,
    RunFn,
    cache_dir,
    cache_key,
    cached_model,
)
from embedpipe.errors import Arg, ConfigError

log = logging.getLogger(__name__)

#: The fidelity threshold: min cosine of every calibration row to torch float32.
DEFAULT_MIN_COSINE = 0.999


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two ``[N, D]`` arrays (two zero rows count as 1).

    Examples
    --------
    >>> min_cosine(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [0.0, 0.0]]))
    0.7071...
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-30)
    cos[both_zero] = 1.0
    return float(cos.min()) if len(cos) else 1.0


class _Flat(nn.Module):
    """``module(batch)`` with the batch's tensors as positional arguments (for exporters)."""

    def __init__(self, module: nn.Module, names: list[str] | None) -> None:
        super().__init__()
        self.module = module
        self.names = names

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        batch: Any = dict(zip(self.names, xs, strict=True)) if self.names else xs[0]
        return self.module(batch).float()  # type: ignore[no-any-return]


def _flatten(batch: Any, modality: str) -> tuple[dict[str, torch.Tensor], InputSpec, bool]:
    """The batch as ``{name: tensor}``, its :class:`InputSpec`, and whether it was a mapping."""
    if isinstance(batch, torch.Tensor):
        return {"pixel_values": batch}, InputSpec(["pixel_values"], [(0,)]), False
    if isinstance(batch, Mapping) and all(isinstance(v, torch.Tensor) for v in batch.values()):
        names = [str(k) for k in batch]
        dyn = [(0, 1) if modality == "text" and v.dim() >= 2 else (0,) for v in batch.values()]
        return dict(batch), InputSpec(names, dyn), True
    raise ConfigError(
        f"a runtime other than torch needs batches of tensors, got {type(batch).__name__}; use ",
        Arg("runtime", "torch"),
        " for this backbone",
    )


def _rows(batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    return {k: v[:n] for k, v in batch.items()}


def _numpy(batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in batch.items():
        v = v.detach().cpu()
        v = v.float() if v.is_floating_point() else v.long()
        out[k] = np.ascontiguousarray(v.numpy())
    return out


@dataclass
class Trial:
    """One candidate measured on the calibration batch."""

    runtime: str
    precision: str
    seconds: float = float("nan")
    min_cos: float = float("nan")
    error: str = ""

    def describe(self, torch_s: float) -> str:
        if self.error:
            return f"{self.runtime} {self.precision}: failed ({self.error})"
        speed = torch_s / self.seconds if self.seconds > 0 else float("nan")
        return f"{self.runtime} {self.precision}: {speed:.2f}x torch, min cos {self.min_cos:.5f}"


def parse_label(label: str) -> tuple[str, str]:
    """``"bf16@openvino-2026.4.1"`` → ``("openvino", "bf16")``; ``"fp32"`` → ``("torch", "fp32")``.

    Examples
    --------
    >>> parse_label("fp32@onnxruntime-1.32.0"), parse_label("bf16")
    (('onnxruntime', 'fp32'), ('torch', 'bf16'))
    """
    prec, _, rest = label.partition("@")
    return (rest.rsplit("-", 1)[0] if rest else "torch"), prec


class RuntimeEncoder:
    """A torch encoder whose forward runs on ``runtime`` (see the module docstring).

    Parameters
    ----------
    inner
        The torch encoder (a ``TorchEncoder``: ``inner.model`` maps a collated batch to
        features).
    runtime
        ``"auto"`` or a registered runtime (``"openvino"``, ``"onnxruntime"``).
    precision
        The precision request (``"auto"``: bf16 where the runtime and CPU offer it and it
        passes the fidelity check, else fp32).
    min_cosine
        The fidelity threshold.
    cache_root
        The cache root (converted models go to ``<root>/runtimes``).

    Examples
    --------
    >>> from embedpipe.backbones import load_backbone
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32,
    ...                     runtime="onnxruntime", precision="fp32")
    >>> enc.encode(torch.rand(2, 3, 32, 32)).shape, enc.runtime, enc.fidelity > 0.999
    (torch.Size([2, 512]), 'onnxruntime', True)
    """

    def __init__(
        self,
        inner: Any,
        runtime: str,
        precision: str = "auto",
        *,
        min_cosine: float = DEFAULT_MIN_COSINE,
        cache_root: str | Path | None = None,
    ) -> None:
        if runtime != "auto":
            RUNTIMES.get(runtime).require()
        self.inner = inner
        self.requested = runtime
        self.min_cosine = float(min_cosine)
        self.cache_root = cache_root
        self.spec = inner.spec
        self.dim = inner.dim
        self.modality = inner.modality
        self.preprocess = inner.preprocess
        self.collate = inner.collate
        if inner.modality == "text":  # the text path (TextEncoder) is the wrapped one's
            self.tokenize = inner.tokenize
            self.collate_tokens = inner.collate_tokens
            self.lengths = inner.lengths
        self.device = torch.device("cpu")
        self.precision_request = precision
        self.precision: str = inner.precision
        self.fidelity: float | None = None
        self.reason = ""
        self.trials: list[Trial] = []
        self.measured = ""  # every candidate's speed and fidelity on the calibration batch
        self.converted: list[str] = []  # the cache entries this encoder converted
        self.calibration_items = 0
        self._chosen: tuple[str, str] | None = None
        self._pinned: tuple[str, str] | None = None
        self._run: RunFn | None = None
        self._calibrated: tuple[dict[str, np.ndarray], torch.Tensor] | None = None
        self._others: dict[str, RuntimeEncoder] = {}

    # ---- what it is --------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return str(self.inner.fingerprint)

    @property
    def space(self) -> str:
        return str(getattr(self.inner, "space", self.inner.fingerprint))

    @property
    def runtime(self) -> str:
        """The runtime the forward runs on (``"auto"`` until the first batch decided)."""
        return self._chosen[0] if self._chosen else self.requested

    @property
    def resolved(self) -> bool:
        return self._chosen is not None

    def __getattr__(self, name: str) -> Any:
        # tokenizer, max_length... of the wrapped encoder (never its model: a runtime's
        # forward is not a torch module to compile).
        if name in ("model", "inner") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def encoder_for(self, modality: str) -> Any:
        """The encoder of ``modality`` in this space, on the same runtime request."""
        from embedpipe.backbones.base import encoder_for

        other = encoder_for(self.inner, modality)
        if other is self.inner:
            return self
        if modality not in self._others:
            self._others[modality] = RuntimeEncoder(
                other,
                self.requested,
                self.precision_request,
                min_cosine=self.min_cosine,
                cache_root=self.cache_root,
            )
        return self._others[modality]

    def to(self, device: str | torch.device = "cpu", precision: str = "auto") -> RuntimeEncoder:
        """Set device and precision request; the runtime is chosen again on the next batch.

        A runtime other than torch runs on the CPU: another device is an error for an
        explicit runtime, and makes ``"auto"`` keep torch there.
        """
        dev = select_device(device)
        self.precision_request = precision
        self._run, self._chosen, self.fidelity = None, None, None
        self._calibrated = None
        if dev.type != "cpu":
            if self.requested != "auto":
                raise ConfigError(
                    Arg("runtime", self.requested),
                    " runs on the CPU; use ",
                    Arg("device", "cpu"),
                    ", or ",
                    Arg("runtime", "torch"),
                    f" (or 'auto') on {dev}",
                )
            self.inner.to(dev, precision)
            self._chosen = ("torch", str(self.inner.precision))
            self.reason = f"auto: torch on {dev} (other runtimes run on the CPU)"
        else:
            self.inner.to(dev, precision)
        self.device = dev
        self.precision = str(self.inner.precision)
        if self._pinned is not None and self._chosen is None:
            self.pin(*self._pinned)
        return self

    def pin(self, runtime: str, precision: str, reason: str | None = None) -> None:
        """Use ``runtime`` at ``precision`` (a store being resumed recorded them; ``reason``
        says why otherwise); its fidelity is still checked on the first batch, and a failure
        is an error."""
        if runtime != "torch":
            RUNTIMES.get(runtime).require()
        self._pinned = (runtime, precision)
        self.requested = runtime if runtime != "torch" else self.requested
        self.precision_request = precision
        if runtime == "torch":
            self.inner.to(self.device, precision)
            self._chosen = ("torch", str(self.inner.precision))
            self.precision = self._chosen[1]
            self.reason = reason or f"torch {precision}: as the store being extended recorded"

    # ---- encoding ----------------------------------------------------------------------
    def encode(self, batch: Any) -> torch.Tensor:
        """Encode a collated batch into a float32 ``[B, dim]`` CPU tensor; the first call
        chooses / checks the runtime on it."""
        if self._chosen is None:
            return self._calibrate(batch)
        if self._calibrated is not None:
            # The calibration batch again (an encode calibrates before it opens its store,
            # then runs its first batch): its features are already known.
            seen, out = self._calibrated
            self._calibrated = None
            flat, _, _ = _flatten(batch, self.modality)
            now = _numpy(flat)
            if list(now) == list(seen) and all(
                now[k].shape == seen[k].shape and np.array_equal(now[k], seen[k]) for k in now
            ):
                return out.clone()
        if self._chosen[0] == "torch":
            return self.inner.encode(batch)  # type: ignore[no-any-return]
        assert self._run is not None
        flat, _, _ = _flatten(batch, self.modality)
        return torch.from_numpy(self._run(_numpy(flat)))

    def _candidates(self) -> list[tuple[str, str]]:
        names = [self.requested] if self.requested != "auto" else list(RUNTIMES)
        out: list[tuple[str, str]] = []
        torch_prec = resolve_precision(self.precision_request, "cpu", self.inner.family)
        for name in names:
            rt = RUNTIMES.get(name)
            if name == "torch":
                out.append(("torch", torch_prec))
                continue
            if not rt.available():
                continue
            if self.precision_request == "auto":
                if "bf16" in rt.precisions and cpu_has_native_bf16():
                    out.append((name, "bf16"))
                out.append((name, "fp32"))
            elif self.precision_request in rt.precisions:
                out.append((name, self.precision_request))
            elif self.requested != "auto":
                raise ConfigError(
                    Arg("runtime", name),
                    f" computes in {', '.join(rt.precisions)} only, not ",
                    Arg("precision", self.precision_request),
                    "; use ",
                    Arg("precision", "auto"),
                    " or 'fp32'",
                )
        return out

    def _load(
        self,
        runtime: str,
        precision: str,
        example: dict[str, torch.Tensor],
        spec: InputSpec,
        mapping: bool,
    ) -> RunFn:
        rt = RUNTIMES.get(runtime)
        folder = cache_dir(self.cache_root) / cache_key(
            self.fingerprint, self.modality, rt, precision
        )
        module = _Flat(self.inner.model, spec.names if mapping else None).eval()
        meta = {
            "backbone": self.spec.to_dict(),
            "fingerprint": self.fingerprint,
            "modality": self.modality,
            "runtime": runtime,
            "runtime_version": rt.version(),
            "precision": precision,
            "inputs": spec.names,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        xs = [v.contiguous() for v in example.values()]
        path, converted = cached_model(folder, rt, lambda p: rt.convert(module, xs, spec, p), meta)
        if converted:
            self.converted.append(str(folder))
        return rt.load(path, precision)

    def _calibrate(self, batch: Any) -> torch.Tensor:
        flat, spec, mapping = _flatten(batch, self.modality)
        total = len(next(iter(flat.values())))
        if total > CALIBRATION_ITEMS:
            # Calibrate on the first rows, then run the chosen runtime on the whole batch.
            head = _rows(flat, CALIBRATION_ITEMS)
            self._calibrate(head if mapping else head["pixel_values"])
            self._calibrated = None
            return self.encode(batch)
        n = total
        self.calibration_items = n
        candidates = [self._pinned] if self._pinned is not None else self._candidates()
        explicit = self.requested != "auto" or self._pinned is not None
        torch_prec = resolve_precision(self.precision_request, "cpu", self.inner.family)
        # torch float32: the reference (and, timed, torch's speed when it runs at fp32).
        self.inner.to("cpu", "fp32")
        # Each candidate runs the batch once, timed, after a warm-up on two of its rows (the
        # first call of a model pays for its kernels and lazy initialisation).
        few = _rows(flat, min(n, 2))
        warm: Any = few if mapping else few["pixel_values"]
        self.inner.encode(warm)
        ref_out, t_ref = _timed(self.inner.encode, batch)
        ref = ref_out.numpy()
        example = _rows(flat, 2) if n >= 2 else {k: torch.cat([v, v]) for k, v in flat.items()}
        outputs: dict[tuple[str, str], tuple[torch.Tensor, RunFn | None]] = {}
        trials: list[Trial] = []
        t_torch = t_ref
        for runtime, prec in candidates:
            trial = Trial(runtime, prec)
            try:
                if runtime == "torch":
                    if prec == "fp32":
                        out, trial.seconds = ref_out, t_ref
                    else:
                        self.inner.to("cpu", prec)
                        self.inner.encode(warm)
                        out, trial.seconds = _timed(self.inner.encode, batch)
                        t_torch = trial.seconds
                    run = None
                else:
                    run = self._load(runtime, prec, example, spec, mapping)
                    arrays = _numpy(flat)
                    run(_numpy(few))
                    out_np, trial.seconds = _timed(run, arrays)
                    out = torch.from_numpy(out_np)
            except ConfigError:
                raise
            except Exception as e:  # noqa: BLE001 - auto moves on; an explicit request says why
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                trial.error = f"{type(e).__name__}: {first}"
                trials.append(trial)
                if explicit:
                    self.inner.to("cpu", torch_prec)
                    raise ConfigError(
                        Arg("runtime", runtime),
                        f" could not run backbone {self.spec.name!r} ({trial.error}); use ",
                        Arg("runtime", "torch"),
                    ) from e
                continue
            if out.shape != ref_out.shape:
                trial.error = f"output shape {tuple(out.shape)} != torch's {tuple(ref_out.shape)}"
                trials.append(trial)
                continue
            trial.min_cos = min_cosine(out.numpy(), ref)
            trials.append(trial)
            outputs[(runtime, prec)] = (out, run)
        self.trials = trials
        passing = [t for t in trials if not t.error and t.min_cos >= self.min_cosine]
        measured = "; ".join(t.describe(t_torch) for t in trials)
        if not passing:
            if explicit:
                self.inner.to("cpu", torch_prec)
                worst = [t for t in trials if not t.error]
                got = f"min cosine {worst[0].min_cos:.5f}" if worst else trials[0].error
                raise ConfigError(
                    Arg("runtime", self.requested),
                    f" gives features of {self.spec.name!r} at {got} to torch fp32 on the first "
                    f"{n} items, below {self.min_cosine}; use ",
                    Arg("runtime", "torch"),
                    ", ",
                    Arg("precision", "fp32"),
                    ", or ",
                    Arg("runtime_min_cosine", _floor(trials)),
                    " to accept it",
                )
            passing = [Trial("torch", "fp32", t_ref, 1.0)]
            outputs[("torch", "fp32")] = (ref_out, None)
            torch_prec = "fp32"
        best = min(passing, key=lambda t: t.seconds)
        out, run = outputs[(best.runtime, best.precision)]
        self._chosen = (best.runtime, best.precision)
        self._run = run
        self.fidelity = best.min_cos
        self.inner.to("cpu", best.precision if best.runtime == "torch" else torch_prec)
        self.precision = best.precision
        speed = t_torch / best.seconds if best.seconds > 0 else float("nan")
        how = "auto" if self.requested == "auto" and self._pinned is None else best.runtime
        self.reason = (
            f"{best.runtime} {best.precision} ({how}: {speed:.2f}x torch on {n} calibration "
            f"items, min cos {best.min_cos:.5f})"
        )
        self.measured = measured
        if self.requested == "auto" and self._pinned is None:
            if best.runtime == "torch":
                log.info("runtime auto: kept torch (%s)", measured)
        log.info("runtime %s", self.reason)
        self._calibrated = (_numpy(flat), out)
        return out

    # ---- provenance -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What the store records: runtime, version, precision, fidelity, why."""
        rt = RUNTIMES.get(self.runtime) if self.resolved else None
        return {
            "runtime": self.runtime,
            "runtime_version": rt.version() if rt is not None else "",
            "precision": self.precision,
            "min_cosine_to_torch_fp32": self.fidelity,
            "min_cosine_threshold": self.min_cosine,
            "calibration_items": self.calibration_items,
            "requested": self.requested,
            "reason": self.reason,
            "measured": self.measured,
        }

    def __repr__(self) -> str:
        return (
            f"RuntimeEncoder(runtime={self.runtime!r}, precision={self.precision!r}, "
            f"inner={self.inner!r})"
        )


def _timed(fn: Callable[[Any], Any], arg: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(arg)
    return out, time.perf_counter() - t


def _floor(trials: list[Trial]) -> str:
    best = max((t.min_cos for t in trials if not t.error), default=0.0)
    return f"{np.floor(best * 1e4) / 1e4:.4f}"
