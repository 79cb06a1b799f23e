"""Outliers: rows far from their nearest neighbours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import KnnGraph

#: A row is flagged when its log score is this many robust standard deviations above the median.
OUTLIER_Z = 4.0


@dataclass
class Outliers:
    """Every row's outlier score (mean cosine distance to its ``k`` neighbours; higher is more
    isolated), the flagged rows (most isolated first) and the cut-off used."""

    scores: np.ndarray
    flagged: np.ndarray
    cutoff: float
    how: str


def outlier_scores(graph: KnnGraph, z: float = OUTLIER_Z) -> Outliers:
    """Score rows by mean cosine distance to their neighbours and flag those whose log score
    is more than ``z`` robust standard deviations (1.4826 × MAD) above the median.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.curate.graph import KnnGraph
    >>> rng = np.random.default_rng(0)
    >>> sims = np.clip(rng.normal(0.9, 0.01, (50, 3)), 0, 1).astype(np.float32)
    >>> sims[7] = 0.1
    >>> outlier_scores(KnnGraph(np.zeros((50, 3), int), sims, "exact", 0.0)).flagged.tolist()
    [7]
    """
    valid = np.asarray(graph.rows >= 0)
    dist = np.where(valid, 1.0 - graph.sims.astype(np.float64), np.nan)
    with np.errstate(invalid="ignore"):
        scores = np.nanmean(np.where(np.any(valid, axis=1)[:, None], dist, 1.0), axis=1)
    scores = np.nan_to_num(scores, nan=1.0)
    if len(scores) < 5:
        return Outliers(scores, np.empty(0, np.int64), float("inf"), "too few rows to score")
    logs = np.log(np.maximum(scores, 1e-6))
    med = float(np.median(logs))
    sigma = max(1.4826 * float(np.median(np.abs(logs - med))), 1e-6)
    cutoff = float(np.exp(med + z * sigma))
    flagged = np.flatnonzero(scores > cutoff)
    flagged = flagged[np.argsort(-scores[flagged], kind="stable")]
    how = (
        f"mean cosine distance to {graph.k} neighbours > {cutoff:.4f} (median {np.exp(med):.4f}, "
        f"{z:g} robust sigma above in log scale)"
    )
    return Outliers(scores.astype(np.float32), flagged, cutoff, how)
