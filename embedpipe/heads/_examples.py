"""Small labelled feature stores for the docstring examples of ``embedpipe.heads``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def digits_store(path: str | Path, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Write scikit-learn's digits (8x8 pixels as 64 features) as a complete feature store.

    Returns the features and labels written. Each row's id is ``d<i>``.

    Examples
    --------
    >>> from embedpipe.store import FeatureStore
    >>> X, y = digits_store("d.h5", n=100)
    >>> len(FeatureStore("d.h5")), X.shape
    (100, (100, 64))
    """
    from sklearn.datasets import load_digits

    from ..store import StoreWriter

    X, y = load_digits(return_X_y=True)
    X, y = X[:n].astype(np.float32), y[:n].astype(np.int64)
    w = StoreWriter.create(
        path,
        dim=X.shape[1],
        fingerprint="fp-digits-pixels",
        backbone={"kind": "pixels", "name": "digits"},
        classes=[str(c) for c in range(10)],
        overwrite=True,
    )
    hashes = np.zeros((len(X), 16), np.uint8)
    hashes[:, :8] = np.arange(len(X), dtype=np.int64).view(np.uint8).reshape(-1, 8)
    w.append(X, [f"d{i}" for i in range(len(X))], hashes, y)
    w.finalize(dataset_digest="digest-digits")
    return X, y
