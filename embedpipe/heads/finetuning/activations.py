"""An intermediate-layer feature store: the activations at the input of the unfrozen blocks.

The frozen bottom of a split backbone is run once over the data by the ordinary encode engine
(resumable, batched, background writer); each item's activation is flattened to one row and
its shape is recorded in the store's ``extra`` provenance (``extra["activation"]``) and in the
backbone spec (``layer="input:<block>"``, ``pooling="none"``, ``options.activation_shape``), so
the store's fingerprint differs from the final-layer store's and from other split points.

Valid only when the bottom is a fixed function of the item: no random input augmentation
(a cached activation would freeze one augmented view), and a frozen bottom in eval mode
(BatchNorm layers of the bottom use their running statistics, which is what a frozen bottom
does anyway; their batch statistics are never used).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...backbones.base import BackboneSpec
from ...backbones.device import autocast, move_batch, resolve_precision, select_device
from ...backbones.text import TextCollate
from ...data.base import DataSource
from ...errors import ConfigError, StoreError
from ...store import FeatureStore, StoreWriter
from .split import SplitBackbone

if TYPE_CHECKING:
    from ...encoding.options import EncodeOptions


class ActivationEncoder:
    """The frozen bottom of a :class:`SplitBackbone` as an :class:`~embedpipe.backbones.Encoder`:
    it encodes an item to its flattened activation at the split point."""

    def __init__(self, split: SplitBackbone, seq_len: int | None = None) -> None:
        self.split = split
        shape = split.activation_shape
        base: Any = split.encoder
        self.collate: Any = base.collate
        if split.sequence:
            length = int(seq_len) if seq_len else int(getattr(base, "max_length", shape[0]))
            shape = (length, shape[1])
            # the text path (TextEncoder): tokenised once, every row padded to ``length``
            self.collate = TextCollate(base.tokenizer, length, fixed=True)
            self.tokenize = self.collate.tokenize
            self.collate_tokens = self.collate.collate_tokens
        self.shape = tuple(shape)
        spec = split.activation_spec.to_dict()
        spec["options"]["activation_shape"] = list(self.shape)
        self.spec = BackboneSpec.from_dict(spec)
        self.dim = int(math.prod(self.shape))
        self.modality = base.modality
        self.preprocess = base.preprocess
        self.device = torch.device("cpu")
        self.precision = "fp32"

    @property
    def fingerprint(self) -> str:
        return self.spec.fingerprint()

    def lengths(self, texts: list[str]) -> list[int]:
        return self.split.encoder.lengths(texts)  # type: ignore[attr-defined]

    def to(self, device: str | torch.device = "cpu", precision: str = "fp32") -> ActivationEncoder:
        dev = select_device(device)
        self.precision = resolve_precision(
            precision, dev, "transformer" if self.split.sequence else "cnn"
        )
        self.split.bottom.to(dev)
        self.device = dev
        return self

    def encode(self, batch: Any) -> torch.Tensor:
        batch = move_batch(batch, self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            out = self.split.bottom(batch).float()
        return out.flatten(1).cpu().clone()


def activation_info(fs: FeatureStore) -> dict[str, Any]:
    """The ``extra["activation"]`` record of an intermediate-layer store.

    Raises
    ------
    StoreError
        If the store holds final-layer features, not cached activations.
    """
    info = (fs.provenance.get("extra") or {}).get("activation")
    if not info:
        raise StoreError(
            f"{str(fs.path)!r} holds no cached activations (no extra['activation']); build one "
            "with embedpipe.heads.cache_activations(split, source, out)."
        )
    return info


def cache_activations(
    split: SplitBackbone,
    source: DataSource,
    out: str | Path,
    options: EncodeOptions | None = None,
    **overrides: Any,
) -> Path:
    """Run the frozen bottom once over ``source`` and store each item's activation as a row.

    An existing store of the same split and backbone is resumed (only missing items are
    computed), so calling this again is cheap.

    Parameters
    ----------
    split
        From :func:`split_backbone`.
    source
        The items (images or texts) to cache, with their labels.
    out
        The ``.h5`` store to write.
    options, **overrides
        :class:`~embedpipe.encoding.EncodeOptions` of the encode (and its fields as keywords:
        ``batch_size``, ``device``, ``dtype``, ``overwrite``...). Unlike a plain encode, the
        defaults here are ``precision="fp32"`` (training from the cache then matches
        training from raw inputs) and ``progress=False``.

    Returns
    -------
    Path
        The store; ``FeatureStore(path).provenance["extra"]["activation"]`` has ``shape``,
        ``layout``, the split and the base backbone fingerprint.

    Examples
    --------
    >>> from embedpipe import load_backbone, open_source
    >>> from embedpipe.heads.finetuning.split import split_backbone
    >>> enc = load_backbone("torchvision:resnet18", weights=None, crop_size=32, resize_size=32)
    >>> split = split_backbone(enc, k=1)
    >>> path = cache_activations(split, open_source("builtin:digits?limit=20"), "act.h5",
    ...                          batch_size=10)
    >>> with FeatureStore(path) as fs:
    ...     len(fs), activation_info(fs)["shape"]
    (20, [512, 1, 1])
    """
    from ...encoding import encode
    from ...encoding.options import EncodeOptions

    opts = EncodeOptions.of(options or EncodeOptions(precision="fp32", progress=False), **overrides)

    seq_len = None
    if split.sequence:
        texts = [source.load(i) for i in range(len(source))]
        seq_len = max(split.encoder.lengths(texts)) if texts else 1  # type: ignore[attr-defined]
    enc = ActivationEncoder(split, seq_len)
    out = Path(out)
    encode(source, enc, out, opts)
    extra = {
        "activation": {
            "shape": list(enc.shape),
            "layout": "row = activation.flatten() (C order)"
            + ("; last channel = attention mask" if split.sequence else ""),
            "split": split.info | {"activation_shape": list(enc.shape)},
            "base_backbone": split.base_spec.to_dict(),
        }
    }
    writer = StoreWriter.open_append(out, fingerprint=enc.fingerprint)
    writer.finalize(extra=extra)
    return out


def load_activations(
    store: str | Path | FeatureStore, split: SplitBackbone
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], list[str]]:
    """Read a cached-activation store made from ``split``'s backbone at ``split``'s cut.

    Returns
    -------
    (activations, labels, shape, classes)
        ``activations`` as ``[N, *shape]`` float32 (in memory), labelled rows only, sorted
        by item id.

    Raises
    ------
    FingerprintMismatchError
        If the store was made by another backbone or split point.
    """
    fs = store if isinstance(store, FeatureStore) else FeatureStore(store)
    try:
        info = activation_info(fs)
        shape = tuple(int(s) for s in info["shape"])
        expected = ActivationEncoder(split, shape[0] if split.sequence else None).fingerprint
        fs.check_fingerprint(expected, "cached activations")
        rows = np.flatnonzero(fs.labels >= 0)
        if rows.size == 0:
            raise ConfigError(f"{str(fs.path)!r} has no labelled rows to fine-tune on.")
        # rows in id order: the encode engine writes texts sorted by length, and training
        # from raw inputs visits items in the same (id) order
        rows = rows[np.argsort(fs.ids[rows].astype(str), kind="stable")]
        X = fs.read(rows)
        return X.reshape(-1, *shape), fs.labels[rows], shape, fs.classes
    finally:
        if not isinstance(store, FeatureStore):
            fs.close()
