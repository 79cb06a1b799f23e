"""The ``compile`` option: ``torch.compile`` an encoder's model for the length of one encode.

``"on"`` compiles; ``"auto"`` compiles only where it pays: the eager forward of a
calibration batch (the encode's first) is timed, and when the remaining batches would take
less than :data:`AUTO_MIN_EAGER_SECONDS` eagerly the encode stays eager (a compile costs tens
of seconds: MiniLM in bf16 measured compiled 385 vs eager 351 items/s after a 27 s compile,
which repays itself after about 100k items). Otherwise the model is compiled, the
calibration batch timed again compiled, and the compiled model kept only if it is faster.

The encoder itself is left as it was after the encode (its model is swapped back).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..errors import Arg, ConfigError

log = logging.getLogger("embedpipe.encoding")

#: ``compile="auto"`` compiles only when the eager encode of the remaining batches would take
#: at least this long (a compile costs ~10-60 s and gains ~10%; below this it cannot repay).
AUTO_MIN_EAGER_SECONDS = 300.0


def compilable(encoder: Any) -> bool:
    """Whether the encoder exposes a torch module (``encoder.model``) to compile."""
    return isinstance(getattr(encoder, "model", None), torch.nn.Module)


@contextlib.contextmanager
def swapped_model(encoder: Any, model: Any) -> Iterator[None]:
    """Use ``model`` as ``encoder.model`` inside the block."""
    original = encoder.model
    encoder.model = model
    try:
        yield
    finally:
        encoder.model = original


def _timed(fn: Callable[[Any], torch.Tensor], batch: Any) -> tuple[torch.Tensor, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn(batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


class Compiler:
    """Decides, on the encode's first batch, whether the rest runs compiled.

    Parameters
    ----------
    encoder
        The encoder (its ``model`` is swapped for the compiled one while the encode runs).
    mode
        ``"off"``, ``"on"`` or ``"auto"``.
    n_batches
        Batches this encode will run (for ``"auto"``'s estimate).

    Examples
    --------
    >>> from embedpipe.backbones import load_backbone
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> c = Compiler(enc, "auto", n_batches=2)
    >>> out = c.first(enc.encode, torch.zeros(2, 3, 32, 32))
    >>> out.shape, c.compiled, c.reason.endswith("under 300s: not worth a compile")
    (torch.Size([2, 512]), False, True)
    """

    def __init__(self, encoder: Any, mode: str, n_batches: int) -> None:
        self.encoder = encoder
        self.mode = mode
        self.n_batches = n_batches
        self.compiled = False
        self.reason = "off"
        self._stack = contextlib.ExitStack()

    def _compile(self) -> Any:
        try:
            return torch.compile(self.encoder.model, dynamic=None)
        except Exception as e:  # noqa: BLE001 - e.g. no compiler backend on this platform
            raise ConfigError(
                Arg("compile", self.mode),
                f": torch.compile failed ({e}); use ",
                Arg("compile", "off"),
                ".",
            ) from e

    def first(self, encode: Callable[[Any], torch.Tensor], batch: Any) -> torch.Tensor:
        """Encode the first batch and settle the mode for the rest of the encode."""
        if self.mode == "off" or not compilable(self.encoder):
            if self.mode != "off":
                self.reason = (
                    f"{self.mode}: {type(self.encoder).__name__} has no torch model to compile"
                )
                log.info("compile %s", self.reason)
            return encode(batch)
        if self.mode == "on":
            self._stack.enter_context(swapped_model(self.encoder, self._compile()))
            t = time.perf_counter()
            try:
                out = encode(batch)
            except Exception as e:
                self.close()
                raise ConfigError(
                    Arg("compile", "on"),
                    ": the compiled model failed on the first batch "
                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); use ",
                    Arg("compile", "off"),
                    ".",
                ) from e
            self.compiled = True
            self.reason = f"on: compiled in {time.perf_counter() - t:.1f}s"
            log.info("compile %s", self.reason)
            return out
        # auto
        out, _ = _timed(encode, batch)  # first call: warm-up
        _, t_eager = _timed(encode, batch)
        remaining = t_eager * max(0, self.n_batches - 1)
        if remaining < AUTO_MIN_EAGER_SECONDS:
            self.reason = (
                f"auto: the eager encode would take ~{remaining:.0f}s, under "
                f"{AUTO_MIN_EAGER_SECONDS:.0f}s: not worth a compile"
            )
            log.info("compile %s", self.reason)
            return out
        try:
            model = self._compile()
            with swapped_model(self.encoder, model):
                t = time.perf_counter()
                _timed(encode, batch)
                compile_s = time.perf_counter() - t
                _, t_comp = _timed(encode, batch)
        except Exception as e:  # noqa: BLE001 - auto falls back to eager
            self.reason = f"auto: compiling failed ({type(e).__name__}), staying eager"
            log.info("compile %s", self.reason)
            return out
        if t_comp < t_eager:
            self._stack.enter_context(swapped_model(self.encoder, model))
            self.compiled = True
            self.reason = (
                f"auto: compiled ({compile_s:.1f}s), {t_eager / t_comp:.2f}x faster per batch "
                "on the calibration batch"
            )
        else:
            self.reason = f"auto: compiled was not faster ({t_comp:.3f}s vs {t_eager:.3f}s per batch), staying eager"
        log.info("compile %s", self.reason)
        return out

    def close(self) -> None:
        """Give the encoder its own model back."""
        self._stack.close()
