"""Image preprocessing in two steps: the geometry per image on uint8 pixels, the arithmetic per
batch.

A preprocess that declares :class:`PixelPreprocess` lets the encode loop do the cheap, per-image
part (decode, resize, crop: all on 8-bit pixels) in the DataLoader workers and the float part
(``/ 255``, ``- mean``, ``/ std``) once per batch in the main process: the workers hand over a
quarter of the bytes and skip a float conversion per image. The two steps compute exactly what
the one-step ``preprocess(img)`` computes, element for element (the same float32 operations in
the same order), so a store's features do not depend on the path.

Examples
--------
>>> import torch
>>> batch = torch.full((2, 3, 1, 1), 255, dtype=torch.uint8)
>>> normalize_pixels(batch, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).flatten().tolist()
[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class PixelPreprocess(Protocol):
    """A preprocess split as ``preprocess(img) == normalize(pixels(img)[None])[0]`` (when
    ``split`` is true: a preprocess may only know at run time whether it splits)."""

    @property
    def split(self) -> bool: ...

    @property
    def decode_min_side(self) -> int | None:
        """The shorter side the geometry resizes to, where a JPEG may be decoded at a reduced
        scale (:func:`embedpipe.data.images.decoding_for`); ``None``: at full size."""
        ...

    def pixels(self, img: Any) -> torch.Tensor:
        """One image → its CHW uint8 tensor at the model's input size."""
        ...

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """An ``[N, C, H, W]`` (or ``[C, H, W]``) uint8 batch → the model's float32 input."""
        ...


def normalize_pixels(
    pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 (or already [0, 1] float) pixels → ``(x / 255 - mean) / std`` in float32, as
    torchvision's ``convert_image_dtype`` + ``normalize`` (and ``ToTensor`` + ``Normalize``)
    compute it, for one CHW image or an NCHW batch."""
    if pixels.is_floating_point():
        x = pixels.to(torch.float32, copy=True)
    else:
        x = pixels.to(torch.float32) / 255
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    return x.sub_(m).div_(s)


def split_preprocess(preprocess: Any) -> PixelPreprocess | None:
    """``preprocess`` when it declares the two steps (:class:`PixelPreprocess`), else ``None``.

    Examples
    --------
    >>> split_preprocess(lambda img: img) is None
    True
    """
    if isinstance(preprocess, PixelPreprocess) and preprocess.split:
        return preprocess
    return None
