"""Deterministic shards: contiguous runs of items, named by a hash of what they hold."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import Arg, ConfigError

DEFAULT_SHARD_SIZE = 8192
KEY_VERSION = b"embedpipe-shard-v1"


@dataclass(frozen=True)
class Shard:
    """Items ``start:stop`` of the source; ``key`` names its file (``<key>.h5``)."""

    index: int
    key: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def file_name(self) -> str:
        return f"{self.key}.h5"


def shard_bounds(
    n: int, n_shards: int | None = None, shard_size: int | None = None, align: int = 1
) -> list[tuple[int, int]]:
    """``(start, stop)`` of each shard.

    Shards of ``shard_size`` items (the last one shorter), or ``n_shards`` near-equal parts;
    by default :data:`DEFAULT_SHARD_SIZE` items each. A fixed ``shard_size`` keeps the keys of
    the leading shards when a dataset grows at its end, so only new shards are encoded.

    Every boundary falls on a multiple of ``align`` (the encode's batch size), so each shard is
    made of the very batches a one-process encode forms: a model's output for an item can
    depend on its batch's size (a batch of one takes other kernels), and aligned shards keep
    the features bit-identical. ``n_shards`` is then an upper bound (``ceil(n / align)``).

    Examples
    --------
    >>> shard_bounds(10, n_shards=3)
    [(0, 4), (4, 7), (7, 10)]
    >>> shard_bounds(10, shard_size=4)
    [(0, 4), (4, 8), (8, 10)]
    >>> shard_bounds(100, n_shards=3, align=16)
    [(0, 48), (48, 80), (80, 100)]
    """
    if n_shards is not None and shard_size is not None:
        raise ConfigError(f"give n_shards ({n_shards}) or shard_size ({shard_size}), not both.")
    if n_shards is not None and n_shards < 1:
        raise ConfigError(Arg("n_shards", n_shards), "; it must be at least 1.")
    if shard_size is not None and shard_size < 1:
        raise ConfigError(Arg("shard_size", shard_size), "; it must be at least 1.")
    align = max(1, int(align))
    if n == 0:
        return [(0, 0)]
    if n_shards is not None:
        blocks = -(-n // align)
        k = min(n_shards, blocks)
        counts = [blocks // k + (1 if i < blocks % k else 0) for i in range(k)]
        edges = [min(n, int(e) * align) for e in np.cumsum([0, *counts])]
        return list(zip(edges[:-1], edges[1:], strict=True))
    size = -(-(shard_size or DEFAULT_SHARD_SIZE) // align) * align
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def shard_key(
    fingerprint: str,
    dtype: str,
    classes: Sequence[str],
    ids: Sequence[str],
    hashes: Sequence[bytes],
    labels: Sequence[int] | np.ndarray,
) -> str:
    """A 20-hex-digit blake2b of everything a shard's file holds.

    Equal keys mean equal contents: the backbone fingerprint, the feature dtype, the class
    names and, in order, every item's id, content hash and label.
    """
    h = hashlib.blake2b(digest_size=10)
    h.update(KEY_VERSION + b"\0" + fingerprint.encode() + b"\0" + dtype.encode() + b"\0")
    h.update(json.dumps(list(classes), ensure_ascii=False).encode("utf-8") + b"\0")
    for item_id, ch, label in zip(ids, hashes, np.asarray(labels, np.int64).tolist(), strict=True):
        b = str(item_id).encode("utf-8")
        h.update(
            len(b).to_bytes(4, "little")
            + b
            + bytes(ch)
            + int(label).to_bytes(8, "little", signed=True)
        )
    return h.hexdigest()


def plan_shards(
    ids: Sequence[str],
    hashes: Sequence[bytes],
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    *,
    fingerprint: str,
    dtype: str = "float32",
    n_shards: int | None = None,
    shard_size: int | None = None,
    align: int = 1,
) -> list[Shard]:
    """Split items into shards (see :func:`shard_bounds`) and name each by :func:`shard_key`."""
    labels = np.asarray(labels, np.int64)
    out = []
    for k, (a, b) in enumerate(shard_bounds(len(ids), n_shards, shard_size, align)):
        key = shard_key(fingerprint, dtype, classes, ids[a:b], hashes[a:b], labels[a:b])
        out.append(Shard(k, key, a, b))
    return out
