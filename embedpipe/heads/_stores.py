"""Small helpers to read labelled features from a feature store."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..store import FeatureStore

log = logging.getLogger(__name__)

StoreLike = FeatureStore | str | Path


@contextmanager
def opened(store: StoreLike, allow_incomplete: bool = False) -> Iterator[FeatureStore]:
    """Yield a :class:`FeatureStore`; close it afterwards only if it was opened here.

    An unfinished store (an interrupted encode) is refused unless ``allow_incomplete``
    (:meth:`FeatureStore.require_complete`, the rule every reader of features applies).
    """
    if isinstance(store, FeatureStore):
        store.require_complete(allow_incomplete)
        yield store
        return
    fs = FeatureStore(store)
    try:
        fs.require_complete(allow_incomplete)
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


def require_classes(y: np.ndarray, where: str, names: list[str] | None = None) -> None:
    """A head learns to tell classes apart: labelled rows of fewer than two classes are a
    :class:`ConfigError` (a one-class head would predict that class for everything)."""
    present = np.unique(np.asarray(y))
    if present.size >= 2:
        return
    if present.size == 0:
        raise ConfigError(f"{where} has no labelled rows; a head needs labelled rows to learn.")
    v = present[0]
    shown = names[int(v)] if names is not None and 0 <= int(v) < len(names) else v
    raise ConfigError(
        f"{where}: every labelled row is of one class ({str(shown)!r}, {len(y)} rows); a head "
        "needs at least two classes. Check the label column the data was encoded with, or "
        "encode data with more classes."
    )


def check_neighbors(estimator: Any, n_rows: int, head: str, context: str) -> None:
    """A neighbour head (``n_neighbors`` anywhere in its parameters) needs at least that many
    training rows; otherwise it fails at its first prediction."""
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # noqa: BLE001 - not an sklearn estimator: nothing to check
        return
    for key, value in params.items():
        if key.split("__")[-1] == "n_neighbors" and isinstance(value, int) and value > n_rows:
            raise ConfigError(
                f"head {head!r}: n_neighbors={value} is more than the {n_rows} rows it trains "
                f"on ({context}); lower n_neighbors to {n_rows} or fewer."
            )
