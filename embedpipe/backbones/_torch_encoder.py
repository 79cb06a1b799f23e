"""Shared machinery of the torch-based encoders: freezing, device/precision moves, encode."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from embedpipe.backbones.base import BackboneSpec, Modality
from embedpipe.backbones.device import (
    Family,
    autocast,
    move_batch,
    resolve_precision,
    select_device,
)
from embedpipe.backbones.text import TokenBatch
from embedpipe.errors import ConfigError


def freeze(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode with every parameter frozen."""
    model.eval()
    model.requires_grad_(False)
    return model


class TorchEncoder:
    """Base of the encoders: ``model`` maps a collated batch (on the device) to ``[B, dim]``;
    subclasses set ``family`` (which decides ``"auto"`` precision and channels_last).

    ``preprocess`` and ``collate`` are instance attributes holding small picklable callables
    (no model), so DataLoader workers receive them cheaply. A text encoder's ``collate`` is a
    :class:`~embedpipe.backbones.text.TokenBatch`, whose halves become its ``tokenize`` and
    ``collate_tokens`` (the :class:`~embedpipe.backbones.base.TextEncoder` protocol).
    """

    family: ClassVar[Family] = "cnn"

    def __init__(
        self,
        spec: BackboneSpec,
        model: nn.Module,
        dim: int,
        preprocess: Any,
        collate: Any,
    ) -> None:
        self.spec = spec
        self.model = freeze(model)
        self.dim = int(dim)
        self.modality: Modality = spec.modality
        self.preprocess = preprocess
        self.collate = collate
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self._channels_last = False
        self._weights_dtype: torch.dtype | None = None
        self._fp32_state: dict[str, torch.Tensor] | None = None
        if self.modality == "text":
            if not isinstance(collate, TokenBatch):
                raise TypeError(
                    f"a text encoder's collate must be a TokenBatch (tokenize + collate_tokens), "
                    f"not {type(collate).__name__}"
                )
            self.tokenize = collate.tokenize
            self.collate_tokens = collate.collate_tokens

    @property
    def fingerprint(self) -> str:
        """Short stable hash of everything that determines the features (see the spec)."""
        return self.spec.fingerprint()

    @property
    def space(self) -> str:
        """The embedding space these features live in: the fingerprint (a dual encoder's
        towers share one space)."""
        return self.fingerprint

    def encoder_for(self, modality: str) -> Any:
        """The encoder of ``modality`` in this encoder's space: itself when its modality
        matches, else a :class:`~embedpipe.errors.ConfigError` naming what it encodes."""
        from embedpipe.backbones.base import default_encoder_for

        return default_encoder_for(self, modality)

    def lengths(self, texts: list[str]) -> list[int]:
        """Token counts of ``texts`` (truncated as the encoder truncates), each text checked;
        what the encode sorts by."""
        if self.modality != "text":
            raise ConfigError(
                f"lengths() counts tokens of a text encoder; {self.spec.name!r} "
                f"encodes {self.modality}s"
            )
        return [int(t.shape[-1]) for t in self.tokenize([self.preprocess(t) for t in texts])]

    def to(self, device: str | torch.device = "cpu", precision: str = "fp32") -> TorchEncoder:
        """Move the model to ``device`` and set the compute precision.

        Parameters
        ----------
        device
            ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``...
        precision
            ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see
            :func:`embedpipe.backbones.device.resolve_precision`).

        Returns
        -------
        self
        """
        dev = select_device(device)
        self.precision = resolve_precision(precision, dev, self.family)
        # channels_last measured faster for CNNs on CPU too (see device.py).
        self._channels_last = self.family == "cnn" and dev.type in ("cpu", "cuda")
        # CPU autocast re-casts frozen weights at every op: for transformers, bf16 weights
        # measured 1.9x faster than autocast here (MiniLM, cosine to fp32 >= 0.9999). For
        # CNNs autocast is faster (oneDNN fuses conv+BN in fp32 weights), so they keep it.
        cast = dev.type == "cpu" and self.precision == "bf16" and self.family == "transformer"
        self._weights_dtype = torch.bfloat16 if cast else None
        if cast and self._fp32_state is None:
            # Keep the float32 weights: casting to bf16 and back would round them for good.
            self._fp32_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.to(dev, dtype=self._weights_dtype or torch.float32)
        if not cast and self._fp32_state is not None:
            self.model.load_state_dict(self._fp32_state)
            self._fp32_state = None
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.device = dev
        return self

    def encode_on_device(self, batch: Any) -> torch.Tensor:
        """:meth:`encode` without the copy back: a float32 ``[B, dim]`` tensor on the
        encoder's device, whose forward may still be running there (CUDA runs it
        asynchronously); the encode loop copies it back while the next batch runs."""
        batch = move_batch(batch, self.device, channels_last=self._channels_last)
        if self._weights_dtype is not None:
            batch = _cast_floats(batch, self._weights_dtype)
            ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
        else:
            ctx = autocast(self.device, self.precision)
        with torch.inference_mode(), ctx:
            return self._forward(batch).float()

    def encode(self, batch: Any) -> torch.Tensor:
        """Encode a collated batch into a float32 ``[B, dim]`` CPU tensor."""
        out = self.encode_on_device(batch).cpu()
        # A plain tensor, so callers may feed features to trainable heads (autograd refuses
        # inference tensors).
        return out.clone() if out.is_inference() else out

    def _forward(self, batch: Any) -> torch.Tensor:
        return self.model(batch)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.spec.kind!r}, name={self.spec.name!r}, "
            f"layer={self.spec.layer!r}, pooling={self.spec.pooling!r}, dim={self.dim}, "
            f"device={str(self.device)!r}, precision={self.precision!r}, "
            f"fingerprint={self.fingerprint!r})"
        )


def _cast_floats(batch: Any, dtype: torch.dtype) -> Any:
    """Cast the floating-point tensors of a batch (ids and masks stay integer)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(dtype) if batch.is_floating_point() else batch
    if isinstance(batch, Mapping):
        return {k: _cast_floats(v, dtype) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_cast_floats(v, dtype) for v in batch)
    return batch
