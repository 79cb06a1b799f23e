"""A deterministic 2-D projection of embeddings (PCA by SVD, with fixed signs)."""

from __future__ import annotations

import numpy as np


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``x`` on their first two principal components.

    Deterministic: an exact SVD of the centred data (no randomised solver), and each axis's
    sign fixed so that its largest-magnitude loading is positive.

    Returns
    -------
    (points, explained)
        ``points`` ``[n, 2]`` float32; ``explained`` the fraction of variance of each axis.

    Examples
    --------
    >>> pts, ev = pca_2d(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.1]]))
    >>> pts.shape, bool(ev[0] > 0.99)
    ((3, 2), True)
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"pca_2d needs a non-empty 2-D array, got shape {x.shape}")
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    axes = vt[:k]
    signs = np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])
    signs[signs == 0] = 1.0
    axes = axes * signs[:, None]
    pts = centred @ axes.T
    if k < 2:
        pts = np.hstack([pts, np.zeros((pts.shape[0], 2 - k))])
    var = s**2
    total = var.sum()
    explained = np.zeros(2)
    explained[:k] = var[:k] / total if total > 0 else 0.0
    return pts.astype(np.float32), explained


def sample_rows(n: int, max_points: int, labels: np.ndarray, seed: int) -> np.ndarray:
    """At most ``max_points`` sorted row numbers, drawn with ``seed`` (all rows if fewer).

    Examples
    --------
    >>> sample_rows(5, 10, np.zeros(5), 0).tolist()
    [0, 1, 2, 3, 4]
    >>> len(sample_rows(100, 10, np.zeros(100), 0))
    10
    """
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))
