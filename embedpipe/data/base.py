"""The DataSource interface: ordered items with stable ids, labels and content hashes.

Also the shared pieces every source uses: :func:`content_hash` (blake2b-128), the array hash
scheme shared by in-memory and torchvision sources, :func:`digest` and :class:`BaseSource`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Modality = Literal["image", "text"]

HASH_BYTES = 16
DIGEST_VERSION = b"embedpipe-data-digest-v1"


def content_hash(data: bytes) -> bytes:
    """The 16-byte blake2b content hash used to key rows in feature stores."""
    return hashlib.blake2b(data, digest_size=HASH_BYTES).digest()


def array_content_hash(item: np.ndarray) -> bytes:
    """Content hash of one in-memory image: its dtype, shape and raw pixel bytes.

    The same scheme is used by :class:`~embedpipe.data.ArraySource`, the ``builtin:`` datasets
    and :class:`~embedpipe.data.TorchvisionSource` (for datasets holding a pixel array), so the
    same image reaches the same feature-store row whichever way it was loaded.
    """
    a = np.ascontiguousarray(item)
    h = hashlib.blake2b(digest_size=HASH_BYTES)
    h.update(f"array:{a.dtype.str}:{'x'.join(map(str, a.shape))}\0".encode())
    h.update(a.data)
    return h.digest()


def text_content_hash(text: str) -> bytes:
    """Content hash of a text: blake2b-128 of its UTF-8 bytes."""
    return content_hash(text.encode("utf-8"))


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


def content_hashes(source: DataSource) -> list[bytes]:
    """All content hashes of ``source``, in order.

    Uses the source's own bulk ``content_hashes()`` when it has one (an image folder hashes
    its files on a thread pool), else calls ``content_hash(i)`` item by item.
    """
    bulk = getattr(source, "content_hashes", None)
    if callable(bulk):
        return list(bulk())
    return [source.content_hash(i) for i in range(len(source))]


#: Longest text kept per row as its content reference (longer texts are cut, marked with "…").
MAX_REFERENCE_CHARS = 2000


def reference(source: DataSource, i: int) -> str:
    """What a person needs to recognise item ``i``: its text (cut to
    :data:`MAX_REFERENCE_CHARS`), or its path / URL / source key for an image.

    Uses the source's own ``reference(i)`` when it has one, else the item's id.

    Examples
    --------
    >>> from embedpipe.data import ArraySource
    >>> reference(ArraySource(["a fine film"]), 0)
    'a fine film'
    """
    own = getattr(source, "reference", None)
    text = str(own(i)) if callable(own) else str(source.ids[i])
    if len(text) > MAX_REFERENCE_CHARS:
        text = text[: MAX_REFERENCE_CHARS - 1] + "…"
    return text


def kept_columns(source: DataSource) -> dict[str, Sequence[str]]:
    """User columns a source keeps per item (``--keep-columns title,url``): ``{name: values}``,
    each list as long as the source. ``{}`` for sources without any."""
    own = getattr(source, "kept_columns", None)
    return dict(own()) if callable(own) else {}


def digest(source: DataSource, hashes: Sequence[bytes] | None = None) -> str:
    """A hex blake2b-128 of a source's ids, content hashes, labels and class names, in order.

    Paths, file times and the source's kind are not part of it: a folder moved elsewhere, or
    the same items read from a table instead of a folder, keep their digest.

    Parameters
    ----------
    source
        Any :class:`DataSource`.
    hashes
        Its content hashes when already computed (they are not computed again).

    Returns
    -------
    str
        32 hex characters.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.data import ArraySource
    >>> a = ArraySource(np.zeros((2, 4, 4), np.uint8))
    >>> digest(a) == digest(ArraySource(np.zeros((2, 4, 4), np.uint8)))
    True
    """
    n = len(source)
    hashes = content_hashes(source) if hashes is None else hashes
    labels = np.asarray(source.labels, dtype=np.int64)
    if len(hashes) != n or len(labels) != n or len(source.ids) != n:
        raise ValueError(
            f"{type(source).__name__} is inconsistent: {n} items, {len(source.ids)} ids, "
            f"{len(hashes)} hashes, {len(labels)} labels"
        )
    h = hashlib.blake2b(digest_size=HASH_BYTES)
    h.update(DIGEST_VERSION + b"\0")
    h.update(json.dumps(list(source.classes), ensure_ascii=False).encode("utf-8") + b"\0")
    h.update(n.to_bytes(8, "little"))
    for item_id, ch, label in zip(source.ids, hashes, labels.tolist(), strict=True):
        b = str(item_id).encode("utf-8")
        # Length prefixes make the byte stream unambiguous whatever the ids contain.
        h.update(len(b).to_bytes(4, "little"))
        h.update(b)
        h.update(ch)
        h.update(int(label).to_bytes(8, "little", signed=True))
    return h.hexdigest()


class BaseSource:
    """Shared behaviour of embedpipe's sources: ``len``, ``digest``, bulk hashes, ``describe``.

    Subclasses set ``modality``, ``ids``, ``labels`` and ``classes`` in ``__init__`` and
    implement ``load`` and ``content_hash``. Only plain, picklable attributes are kept.
    """

    modality: Modality
    ids: Sequence[str]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, i: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def content_hash(self, i: int) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def content_hashes(self) -> list[bytes]:
        """All content hashes, in order."""
        return [self.content_hash(i) for i in range(len(self))]

    def digest(self) -> str:
        """See :func:`digest`."""
        return digest(self)

    def reference(self, i: int) -> str:
        """What a person needs to recognise item ``i`` (see :func:`reference`); sources
        override it: the text itself, or an image's path / URL / key. Default: the id."""
        return str(self.ids[i])

    def kept_columns(self) -> dict[str, Sequence[str]]:
        """User columns kept per item (see :func:`kept_columns`). Default: none."""
        return {}

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (kind, modality, size, classes, where it comes from)."""
        labels = np.asarray(self.labels)
        return {
            "kind": type(self).__name__,
            "modality": self.modality,
            "n_items": len(self),
            "n_labelled": int((labels >= 0).sum()),
            "classes": list(self.classes),
            **self._describe_extra(),
        }

    def _describe_extra(self) -> dict[str, Any]:
        return {}

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"item index {i} out of range for {type(self).__name__} of {n} items")
        return i % n if n else i

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, modality={self.modality!r}, classes={len(self.classes)})"
