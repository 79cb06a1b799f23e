"""Exact duplicates (one content hash), near-duplicates (cosine above a threshold, grouped
into clusters) and leaks (either kind across two stores), all from the kNN graph."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import Arg, ConfigError
from .corpus import NO_HASH, Corpus
from .graph import KnnGraph

#: How many robust standard deviations below the typical nearest-neighbour distance (in log
#: scale) a pair must be to count as a near-duplicate when the threshold is chosen for you.
AUTO_Z = 4.0
#: ... and at most this share of the typical nearest-neighbour cosine distance.
AUTO_RATIO = 0.25
#: The chosen threshold stays within these bounds.
AUTO_BOUNDS = (0.8, 0.9999)


@dataclass
class Threshold:
    """A near-duplicate cosine threshold and how it was chosen."""

    value: float
    how: str
    auto: bool


def choose_threshold(graph: KnnGraph, corpus: Corpus, given: float | None = None) -> Threshold:
    """The near-duplicate threshold: ``given``, or one read off the nearest-neighbour
    similarities.

    The automatic rule looks at ``d = 1 - cosine`` of every row's nearest other row (pairs of
    one content hash left out: they are exact duplicates). Near-duplicates are far closer than
    the rest, so the threshold distance is the smaller of ``AUTO_RATIO`` × the median ``d`` and
    ``exp(median(log d) - AUTO_Z · σ)`` (σ: 1.4826 × the median absolute deviation of
    ``log d``), kept within ``AUTO_BOUNDS`` in cosine.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.curate.graph import KnnGraph
    >>> g = KnnGraph(np.zeros((1, 1), int), np.zeros((1, 1), np.float32), "exact", 0.0)
    >>> choose_threshold(g, None, 0.97).how
    'set: 0.97'
    """
    if given is not None:
        if not 0.0 < given <= 1.0:
            raise ConfigError(
                Arg("near_dup_threshold", given, py=f"{given:g}"),
                " is not a cosine in (0, 1]; pass e.g. ",
                Arg("near_dup_threshold", 0.95),
                ".",
            )
        return Threshold(float(given), f"set: {given:g}", auto=False)
    s1 = graph.sims[:, 0].astype(np.float64)
    valid = graph.rows[:, 0] >= 0
    if corpus is not None and valid.any():
        nb = np.where(valid, graph.rows[:, 0], 0)
        same = (corpus.hashes == corpus.hashes[nb]) & (corpus.hashes != NO_HASH)
        valid &= ~same
    if valid.sum() < 5:
        lo = AUTO_BOUNDS[1]
        return Threshold(lo, f"auto: too few rows to estimate; {lo:g}", auto=True)
    d = np.maximum(1.0 - s1[valid], 1e-6)
    logd = np.log(d)
    med = float(np.median(logd))
    sigma = 1.4826 * float(np.median(np.abs(logd - med)))
    d_z = math.exp(med - AUTO_Z * sigma)
    d_ratio = AUTO_RATIO * math.exp(med)
    value = float(np.clip(1.0 - min(d_z, d_ratio), *AUTO_BOUNDS))
    how = (
        f"auto: nearest-neighbour cosine of {int(valid.sum()):,} rows has median "
        f"{1 - math.exp(med):.4f}; threshold distance = min({AUTO_RATIO:g} x median distance "
        f"{math.exp(med):.4f}, exp(median log distance - {AUTO_Z:g} sigma={sigma:.3f}) = "
        f"{d_z:.4f}) -> cosine {value:.4f} (set near_dup_threshold / --near-dup-threshold to "
        "override)"
    )
    return Threshold(value, how, auto=True)


@dataclass
class Pairs:
    """Pairs of rows ``(a < b)`` with their cosine similarity."""

    a: np.ndarray
    b: np.ndarray
    sim: np.ndarray


def exact_pairs(corpus: Corpus) -> Pairs:
    """Every pair of rows with one content hash (hashes of zero bytes are ignored), chained:
    each member of a group is paired with the group's first row."""
    h = corpus.hashes
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same_as_prev = np.zeros(len(h), bool)
    if len(h) > 1:
        same_as_prev[1:] = (hs[1:] == hs[:-1]) & (hs[1:] != NO_HASH)
    if not same_as_prev.any():
        e = np.empty(0, np.int64)
        return Pairs(e, e, np.empty(0, np.float32))
    group_start = np.maximum.accumulate(np.where(~same_as_prev, np.arange(len(h)), 0))
    member = np.flatnonzero(same_as_prev)
    a, b = order[group_start[member]], order[member]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return Pairs(lo, hi, np.ones(len(lo), np.float32))


def near_pairs(graph: KnnGraph, threshold: float) -> Pairs:
    """Graph edges with cosine ``>= threshold``, each pair once."""
    r, c = np.nonzero((graph.sims >= threshold) & (graph.rows >= 0))
    a, b = r.astype(np.int64), graph.rows[r, c]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(np.stack([lo, hi], axis=1), axis=0, return_index=True)[1]
    return Pairs(lo[key], hi[key], graph.sims[r, c][key].astype(np.float32))


def clusters(n: int, pairs: Pairs) -> np.ndarray:
    """Connected components of the pair graph: a cluster number per row, ``-1`` for rows in
    no pair."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(pairs.a) == 0:
        return np.full(n, -1, np.int64)
    m = coo_matrix((np.ones(len(pairs.a)), (pairs.a, pairs.b)), shape=(n, n))
    _, comp = connected_components(m, directed=False)
    involved = np.zeros(n, bool)
    involved[pairs.a] = involved[pairs.b] = True
    _, renum = np.unique(comp[involved], return_inverse=True)
    out = np.full(n, -1, np.int64)
    out[involved] = renum
    return out
