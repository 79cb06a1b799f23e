"""The DataSource interface: ordered items with stable ids, labels and content hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Modality = Literal["image", "text"]

HASH_BYTES = 16


def content_hash(data: bytes) -> bytes:
    """The 16-byte blake2b content hash used to key rows in feature stores."""
    return hashlib.blake2b(data, digest_size=HASH_BYTES).digest()


@runtime_checkable
class DataSource(Protocol):
    """A dataset to encode.

    Attributes
    ----------
    modality
        ``"image"`` or ``"text"``.
    ids
        Unique, stable string ids (relative paths, row keys...), one per item, in order.
    labels
        int64 array of class indices, ``-1`` where an item has no label.
    classes
        Class names; ``labels`` index into it. Empty when the source has no labels.

    ``load(i)`` returns the raw item (a PIL RGB image or a str) or raises
    :class:`embedpipe.errors.ItemError` naming the item. ``content_hash(i)`` is the blake2b-128
    of the item's raw bytes (file bytes, or the UTF-8 text). ``digest()`` hashes ids, content
    hashes and labels: two sources with equal digests encode to equal stores.
    Sources must be picklable (they are sent to DataLoader workers).
    """

    modality: Modality
    ids: Sequence[str]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int: ...

    def load(self, i: int) -> Any: ...

    def content_hash(self, i: int) -> bytes: ...

    def digest(self) -> str: ...

    def describe(self) -> dict[str, Any]: ...
