"""Training a head from a store larger than memory, one batch at a time.

Memory stays flat: at any moment one batch of features (``batch_size × dim``) is in memory,
plus the labels of the store (8 bytes per row). Preprocessing statistics are computed in
their own streaming passes (``StandardScaler.partial_fit``, ``IncrementalPCA.partial_fit``);
then the classifier's ``partial_fit`` sees the rows in a shuffled order of contiguous blocks,
rows shuffled within each block, for ``epochs`` passes. A ``validation_fraction`` of the rows
(picked at random) is held out: after each epoch the head is scored on it (streamed too), and
the best epoch's head is kept; training stops after ``patience`` epochs without improvement.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.pipeline import Pipeline

from ..errors import ConfigError
from ..store import FeatureStore
from ._stores import StoreLike, opened
from .registry import list_heads
from .spec import HeadSpec

log = logging.getLogger(__name__)


def _blocks(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[tuple[int, int]]:
    starts = np.arange(0, n, batch_size)
    if rng is not None:
        starts = rng.permutation(starts)
    for s in starts.tolist():
        yield s, min(n, s + batch_size)


def _transform(steps: list[tuple[str, BaseEstimator]], X: np.ndarray) -> np.ndarray:
    for _, step in steps:
        X = step.transform(X)
    return X


def _streaming_steps(spec: HeadSpec) -> list[tuple[str, BaseEstimator]]:
    steps = spec.build().steps[:-1]
    out = []
    for name, step in steps:
        if isinstance(step, PCA):
            n = step.n_components
            if not isinstance(n, (int, np.integer)):
                raise ConfigError(
                    f"out-of-core PCA needs an integer number of components (pca:N), got {n!r}: "
                    "explained-variance PCA needs all rows at once."
                )
            step = IncrementalPCA(n_components=int(n))
        out.append((name, step))
    return out


def fit_out_of_core(
    store: StoreLike,
    head: HeadSpec | str | Mapping[str, Any] = "sgd",
    *,
    batch_size: int = 8192,
    epochs: int = 5,
    validation_fraction: float = 0.1,
    patience: int = 2,
    random_state: int | None = None,
) -> Pipeline:
    """Fit a head on a store by streaming batches (flat peak memory).

    Parameters
    ----------
    store
        A feature store (path or open :class:`~embedpipe.store.FeatureStore`).
    head
        A head whose classifier has ``partial_fit`` (``"sgd"``, ``"torch_linear"``,
        ``"torch_mlp"``, or a spec of one). Preprocessing ``standardize``, ``l2`` and
        ``pca:N`` are supported (PCA becomes :class:`~sklearn.decomposition.IncrementalPCA`).
    batch_size
        Rows read and learned from at a time.
    epochs
        Maximum passes over the training rows.
    validation_fraction
        Share of rows held out to pick the best epoch; ``0`` disables it (the last epoch's head is kept).
    patience
        Epochs without a better validation accuracy before stopping.
    random_state
        Seed of the held-out rows and of the block order (default: the spec's).

    Returns
    -------
    sklearn.pipeline.Pipeline
        The fitted preprocessing steps then ``("head", classifier)``.

    Examples
    --------
    >>> from embedpipe.heads._examples import digits_store
    >>> X, y = digits_store("digits.h5")
    >>> pipe = fit_out_of_core("digits.h5", "sgd", batch_size=256, epochs=3)
    >>> float(pipe.score(X, y)) > 0.85
    True
    """
    spec = HeadSpec.coerce(head)
    clf = spec.build_estimator()
    if not hasattr(clf, "partial_fit"):
        ok = [n for n in list_heads() if hasattr(HeadSpec(n).build_estimator(), "partial_fit")]
        raise ConfigError(
            f"head {spec.name!r} cannot learn batch by batch (no partial_fit); out-of-core heads: {ok}."
        )
    if batch_size < 1 or epochs < 1 or not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(
            "out-of-core training needs batch_size >= 1, epochs >= 1 and 0 <= validation_fraction < 1."
        )
    seed = spec.random_state if random_state is None else random_state
    rng = np.random.default_rng(seed)
    with opened(store) as fs:
        return _fit(fs, spec, clf, batch_size, epochs, validation_fraction, patience, rng)


def _fit(
    fs: FeatureStore,
    spec: HeadSpec,
    clf: BaseEstimator,
    batch_size: int,
    epochs: int,
    validation_fraction: float,
    patience: int,
    rng: np.random.Generator,
) -> Pipeline:
    labels = fs.labels
    n = labels.size
    labelled = labels >= 0
    if not labelled.any():
        raise ConfigError(
            f"feature store {str(fs.path)!r} has no labelled rows; encode a labelled dataset to train a head."
        )
    classes = np.unique(labels[labelled])
    val = (
        (rng.random(n, dtype=np.float32) < validation_fraction) & labelled
        if validation_fraction > 0
        else np.zeros(n, bool)
    )
    train = labelled & ~val
    steps = _streaming_steps(spec)

    # one streaming pass per stateful preprocessing step
    for k, (_, step) in enumerate(steps):
        if not hasattr(step, "partial_fit"):
            continue
        for a, b in _blocks(n, batch_size, None):
            mask = train[a:b]
            if mask.any():
                step.partial_fit(_transform(steps[:k], fs.read(slice(a, b))[mask]))

    def batches(mask_all: np.ndarray, shuffle: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for a, b in _blocks(n, batch_size, rng if shuffle else None):
            mask = mask_all[a:b]
            if not mask.any():
                continue
            X = _transform(steps, fs.read(slice(a, b))[mask])
            y = labels[a:b][mask]
            if shuffle:
                perm = rng.permutation(y.size)
                X, y = X[perm], y[perm]
            yield X, y

    best_acc, best_clf, since = -1.0, None, 0
    for epoch in range(1, epochs + 1):
        for X, y in batches(train, shuffle=True):
            clf.partial_fit(X, y, classes=classes)
        if not val.any():
            continue
        correct = total = 0
        for X, y in batches(val, shuffle=False):
            correct += int((clf.predict(X) == y).sum())
            total += y.size
        acc = correct / total
        log.info("out-of-core %s epoch %d: validation accuracy %.4f", spec.name, epoch, acc)
        if acc > best_acc:
            best_acc, best_clf, since = acc, copy.deepcopy(clf), 0
        else:
            since += 1
            if since >= patience:
                break
    if best_clf is not None:
        clf = best_clf
    return Pipeline([*steps, ("head", clf)])
