"""A complete store from arrays in one call: for vectors made elsewhere (another tool, a
model embedpipe does not wrap), so that indexes, heads and curation can use them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from .writer import StoreWriter


def write_store(
    path: str | Path,
    features: Any,
    ids: Sequence[str] | None = None,
    *,
    labels: Sequence[int] | None = None,
    classes: Sequence[str] = (),
    fingerprint: str = "external",
    backbone: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``features`` (``[n, dim]``) as a complete feature store and return its path.

    Parameters
    ----------
    path
        The store file to create (an existing file is an error unless ``overwrite``).
    features
        The vectors, one row per item (float32 / float16 / float64; stored as float32).
    ids
        One unique id per row (default ``"0"``, ``"1"``...).
    labels
        Class indices into ``classes`` per row (``-1``: unlabelled; default all ``-1``).
    classes
        The class names.
    fingerprint
        What made the vectors: stores (and indexes) with different fingerprints are never
        mixed, so give each source of vectors its own.
    backbone
        Provenance kept in the store (default ``{"name": fingerprint}``).
    overwrite
        Replace an existing file.

    Each row's content hash is the data layer's :func:`~embedpipe.data.base.content_hash` of
    its float32 bytes.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(100, 8)).astype("float32")
    >>> write_store("vectors.h5", X, [f"v{i}" for i in range(100)], fingerprint="demo").name
    'vectors.h5'
    >>> from embedpipe.store import FeatureStore
    >>> with FeatureStore("vectors.h5") as fs:
    ...     len(fs), fs.ids[:2].tolist(), fs.complete
    (100, ['v0', 'v1'], True)
    """
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[1] == 0 or x.dtype.kind not in "fiu":
        raise StoreError(
            f"features must be a 2-D numeric array [n, dim], got shape {x.shape} of {x.dtype}"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    if len(ids) != n:
        raise StoreError(f"{len(ids)} ids for {n} rows of features; give one id per row")
    y = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    if y.shape != (n,):
        raise StoreError(f"{len(y)} labels for {n} rows of features; give one label per row")
    from ..data.base import content_hash  # on use: the data package is slow to import

    hashes = [content_hash(row.tobytes()) for row in x]
    writer = StoreWriter.create(
        path,
        dim=x.shape[1],
        fingerprint=fingerprint,
        backbone=backbone if backbone is not None else {"name": fingerprint},
        classes=list(classes),
        overwrite=overwrite,
    )
    try:
        if n:
            writer.append(x, ids, hashes, y)
    except BaseException:
        writer.close()
        raise
    writer.finalize()
    return Path(path)
