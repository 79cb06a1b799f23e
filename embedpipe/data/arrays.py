"""In-memory data: an image array or a list of texts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, ItemError
from .base import BaseSource, Modality, array_content_hash, text_content_hash
from .images import array_to_image
from .labels import encode_labels, int_labels


def default_ids(n: int, prefix: str = "item") -> list[str]:
    """``item-000000``, ``item-000001``... (wider past a million items)."""
    width = max(6, len(str(max(n - 1, 0))))
    return [f"{prefix}-{k:0{width}d}" for k in range(n)]


def _check_images(images: np.ndarray) -> np.ndarray:
    a = images
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[3] not in (1, 3, 4)):
        raise ConfigError(
            f"image array of shape {a.shape}: expected [N, H, W] (grayscale) or [N, H, W, C] with "
            "C in 1, 3, 4 (channels last; for [N, C, H, W] pass array.transpose(0, 2, 3, 1))."
        )
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        if a.size:
            lo, hi = float(np.min(a)), float(np.max(a))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ConfigError("float image array holds NaN or Inf; clean it before encoding.")
            if lo < 0.0 or hi > 1.0:
                raise ConfigError(
                    f"float image array spans [{lo:g}, {hi:g}]; floats must lie in [0, 1] "
                    "(divide by 255), or pass uint8 values 0-255."
                )
        return a
    raise ConfigError(
        f"image array dtype {a.dtype} is not supported; use uint8 (0-255) or floats in [0, 1] "
        "(e.g. array.astype(np.uint8) if the values already lie in 0-255)."
    )


class ArraySource(BaseSource):
    """Items held in memory: images as one array, or texts as a list of strings.

    Parameters
    ----------
    data
        Images: a numpy array ``[N, H, W]`` (grayscale, loaded as RGB) or ``[N, H, W, C]``
        (C = 1, 3 or 4; RGBA is composited over white), ``uint8`` or floats in ``[0, 1]``.
        Texts: a sequence of ``str``.
    labels
        Optional, one per item. Integers: class indices into ``classes`` when it is given
        (``-1`` = none), else the sorted distinct values become the classes (negative = none).
        Strings: class names (empty or ``None`` = none).
    classes
        Class names.
    ids
        Unique ids; default ``item-000000``, ``item-000001``...
    name
        A name shown by :meth:`describe` (e.g. ``"builtin:digits"``).
    meta
        Extra JSON-serialisable facts for :meth:`describe`.

    Notes
    -----
    The content hash of an image is that of its dtype, shape and pixel bytes; of a text, that
    of its UTF-8 bytes. Pickling copies the data (DataLoader workers get their own copy).

    Examples
    --------
    >>> import numpy as np
    >>> src = ArraySource(np.zeros((3, 8, 8), np.uint8), labels=["a", "b", "a"])
    >>> src.classes, src.labels.tolist(), src.load(0).mode
    (['a', 'b'], [0, 1, 0], 'RGB')
    >>> ArraySource(["good film", "bad film"]).modality
    'text'
    """

    def __init__(
        self,
        data: np.ndarray | Sequence[str],
        labels: Sequence[Any] | np.ndarray | None = None,
        classes: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        name: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.modality: Modality
        if isinstance(data, np.ndarray):
            if data.dtype.kind in "US":
                self.modality = "text"
                self.texts: list[str] | None = [str(t) for t in data.tolist()]
                self.images: np.ndarray | None = None
            else:
                self.modality = "image"
                self.images = _check_images(data)
                self.texts = None
        elif isinstance(data, str):
            raise ConfigError("data is one string; pass a list of texts, e.g. [text].")
        else:
            texts = list(data)
            bad = [k for k, t in enumerate(texts) if not isinstance(t, str)]
            if bad:
                raise ConfigError(
                    f"data must be an image array or a list of str; item {bad[0]} is "
                    f"{type(texts[bad[0]]).__name__}."
                )
            self.modality = "text"
            self.texts = texts
            self.images = None
        n = len(self.images) if self.images is not None else len(self.texts or [])

        if ids is None:
            self.ids = default_ids(n)
        else:
            self.ids = [str(i) for i in ids]
            if len(self.ids) != n:
                raise ConfigError(f"{len(self.ids)} ids for {n} items; give one id per item.")
            dup = sorted(k for k, c in Counter(self.ids).items() if c > 1)
            if dup:
                raise ConfigError(f"ids must be unique; duplicated: {dup[:10]}.")

        if labels is None:
            self.labels = np.full(n, -1, dtype=np.int64)
            self.classes: list[str] = [str(c) for c in classes] if classes is not None else []
        else:
            if len(labels) != n:
                raise ConfigError(f"{len(labels)} labels for {n} items; give one label per item.")
            arr = np.asarray(labels)
            if arr.dtype.kind in "iu" and classes is not None:
                self.classes = [str(c) for c in classes]
                self.labels = int_labels(arr, self.classes)
            elif arr.dtype.kind in "iu":
                raw = [int(v) if v >= 0 else None for v in arr.tolist()]
                self.labels, self.classes = encode_labels(raw, None, ids=self.ids)
            else:
                self.labels, self.classes = encode_labels(list(labels), classes, ids=self.ids)
        self.name = name
        self.meta = dict(meta or {})

    def load(self, i: int) -> Image.Image | str:
        """Item ``i``: a PIL RGB image, or the text (empty text raises ItemError)."""
        i = self._check_index(i)
        if self.images is not None:
            return array_to_image(self.images[i])
        assert self.texts is not None
        text = self.texts[i]
        if not text.strip():
            raise ItemError(self.ids[i], "empty text")
        return text

    def reference(self, i: int) -> str:
        """The text itself, or the image's id (an in-memory image has no path)."""
        return self.texts[i] if self.texts is not None else str(self.ids[i])

    def content_hash(self, i: int) -> bytes:
        """Hash of the image's dtype, shape and bytes, or of the text's UTF-8 bytes."""
        i = self._check_index(i)
        if self.images is not None:
            return array_content_hash(self.images[i])
        assert self.texts is not None
        return text_content_hash(self.texts[i])

    def _describe_extra(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.name is not None:
            d["name"] = self.name
        if self.images is not None:
            d["shape"] = list(self.images.shape[1:])
            d["dtype"] = str(self.images.dtype)
        return {**d, **self.meta}
