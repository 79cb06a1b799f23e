"""Batched JPEG decoding on the GPU (``decode_device="cuda"``), for when CPU decoding is the limit.

DataLoader workers only read each image file's bytes; the main process decodes a whole
batch at once with :func:`torchvision.io.decode_jpeg` on ``decode_device`` (nvJPEG on CUDA),
then runs the backbone's tensor preprocessing (resize, crop, normalise) there too. Images
that are not JPEG files (PNG, in-memory arrays, table cells) are decoded in the workers as
usual and only preprocessed on the device. ``decode_device="cpu"`` runs the same batched
path on the CPU (useful to compare, and to test without a GPU).

The features match the PIL path closely, not bit for bit: the JPEG decoders differ in their
IDCT and chroma upsampling (cosine to the PIL path ≥ 0.99 on ResNet features, see
``tests/encoding/test_decode.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..backbones.base import Encoder
from ..backbones.rgb import as_rgb
from ..data.base import DataSource, reference
from ..errors import Arg, ConfigError
from .loader import LoadedBatch, _describe, _worker_init

_JPEG_MAGIC = b"\xff\xd8\xff"


class _Raw(Dataset):
    """An item as JPEG file bytes (a uint8 tensor) or, for anything else, a decoded CHW uint8
    tensor; failures are returned as strings."""

    def __init__(self, source: DataSource, positions: Sequence[int], alpha: str = "white") -> None:
        self.source = source
        self.positions = list(positions)
        self.alpha = alpha  # the encoder's own transparency rule (embedpipe.backbones.rgb)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> tuple[int, str, Any]:
        i = self.positions[k]
        try:
            ref = reference(self.source, i)
            if os.path.isfile(ref):
                with open(ref, "rb") as f:
                    data = f.read()
                if data[:3] == _JPEG_MAGIC:
                    return i, "jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8)
            from torchvision.transforms.functional import pil_to_tensor

            img = self.source.load(i)
            if getattr(img, "mode", "RGB") != "RGB":
                img = as_rgb(img, self.alpha)
            return i, "tensor", pil_to_tensor(img)
        except Exception as e:  # noqa: BLE001 - reported with the item's id
            return i, "error", _describe(e)


def _as_list(rows: list[Any]) -> list[Any]:
    return rows


def _decode(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | str]:
    """Decode JPEG byte tensors in one call; on a failure, one by one to find the bad ones."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        out = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        return list(out)
    except RuntimeError:
        res: list[torch.Tensor | str] = []
        for d in data:
            try:
                res.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
            except RuntimeError as e:
                res.append(f"cannot decode JPEG: {str(e).splitlines()[0]}")
        return res


def iter_decoded_batches(
    source: DataSource,
    encoder: Encoder,
    positions: Sequence[int],
    *,
    batch_size: int,
    num_workers: int,
    decode_device: str,
) -> Iterator[LoadedBatch]:
    """Yield batches decoded and preprocessed on ``decode_device`` (see the module doc)."""
    if not positions:
        return
    from ..backbones.device import select_device

    device = select_device(decode_device)
    loader = DataLoader(
        _Raw(source, positions, getattr(encoder.preprocess, "alpha", "white")),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if num_workers > 0 else None,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    checked = False
    for rows in loader:
        failures = [(i, v) for i, kind, v in rows if kind == "error"]
        jpeg = [(i, v) for i, kind, v in rows if kind == "jpeg"]
        images: dict[int, torch.Tensor] = {
            i: v.to(device, non_blocking=True) for i, kind, v in rows if kind == "tensor"
        }
        if jpeg:
            for (i, _), img in zip(jpeg, _decode([v for _, v in jpeg], device), strict=True):
                if isinstance(img, str):
                    failures.append((i, img))
                else:
                    images[i] = img
        good: list[int] = []
        samples = []
        for i, _, _ in rows:
            if i not in images:
                continue
            try:
                samples.append(encoder.preprocess(images[i]))
                good.append(i)
            except TypeError as e:
                if not checked:
                    raise ConfigError(
                        Arg("decode_device", decode_device),
                        " needs a backbone whose preprocessing takes image tensors (torchvision "
                        f"kinds); {encoder.spec.kind!r} does not ({e}). Use ",
                        Arg("decode_device", None, cli="none"),
                        ".",
                    ) from e
                failures.append((i, _describe(e)))
            except Exception as e:  # noqa: BLE001 - reported with the item's id
                failures.append((i, _describe(e)))
            checked = True
        batch = encoder.collate(samples) if samples else None
        yield LoadedBatch(good, batch, failures)
