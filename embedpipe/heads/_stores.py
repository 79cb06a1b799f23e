"""Small helpers to read labelled features from a feature store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..store import FeatureStore

log = logging.getLogger(__name__)

StoreLike = FeatureStore | str | Path


@contextmanager
def opened(store: StoreLike) -> Iterator[FeatureStore]:
    """Yield a :class:`FeatureStore`; close it afterwards only if it was opened here."""
    if isinstance(store, FeatureStore):
        yield store
        return
    fs = FeatureStore(store)
    try:
        yield fs
    finally:
        fs.close()


def labelled_rows(fs: FeatureStore) -> np.ndarray:
    """Row numbers of the labelled rows (label != -1); an unlabelled store is an error."""
    labels = fs.labels
    rows = np.flatnonzero(labels >= 0)
    if rows.size == 0:
        raise ConfigError(
            f"feature store {str(fs.path)!r} has no labelled rows; encode a dataset with labels "
            "(e.g. --label-column, or class folders) to train or evaluate a head."
        )
    if rows.size < labels.size:
        log.warning("%s: %d unlabelled rows ignored", fs.path, labels.size - rows.size)
    return rows


def load_xy(fs: FeatureStore) -> tuple[np.ndarray, np.ndarray]:
    """All labelled features and their labels, in memory."""
    rows = labelled_rows(fs)
    X = fs.features if rows.size == len(fs) else fs.read(rows)
    return X, fs.labels[rows]


def class_names(fs: FeatureStore, labels: np.ndarray) -> list[str]:
    """Names of label indices: the store's ``classes``, else the indices as text."""
    names = fs.classes
    top = int(labels.max()) if labels.size else -1
    if names and len(names) > top:
        return list(names)
    return [str(i) for i in range(top + 1)]


def store_summary(fs: FeatureStore) -> dict[str, object]:
    """What a report says about a store: path, fingerprint, backbone, digest, shape."""
    return {
        "path": str(fs.path),
        "fingerprint": fs.fingerprint,
        "backbone": fs.backbone,
        "dataset_digest": fs.dataset_digest,
        "n_rows": len(fs),
        "n_features": fs.dim,
    }
