"""Search restricted to some rows (a filter, removed rows, rows pending a merge), with a plan
chosen by how many rows are allowed.

- **Narrow** (fewer than :data:`EXACT_SHARE` of the rows, or at most :data:`EXACT_ROWS` rows):
  exact search over the allowed rows' vectors. Recall is 1 whatever the selectivity.
- **Broad**: the FAISS index is searched with an id selector (``faiss.IDSelectorBitmap`` in
  ``SearchParameters(sel=...)``), its search parameter (``nprobe`` / ``efSearch``) raised by
  ``1 / share`` so that about as many allowed candidates are visited as an unfiltered search
  visits. An index without id selectors (LSH) is searched wider and the others dropped.
- Rows added by an update and not yet merged into FAISS (``SimilarityIndex.delta_rows``) are
  always searched exactly, and merged with the FAISS candidates.

Distances are FAISS's (inner product, or squared L2); candidates that mix lossy FAISS codes
with exact vectors are re-scored exactly before they are merged.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from .metric import faiss_metric, higher_is_closer
from .params import knob_of

if TYPE_CHECKING:
    from .similarity import SimilarityIndex

#: Filters letting through less than this share of the rows are searched exactly.
EXACT_SHARE = 0.1
#: ... and so are filters letting through at most this many rows.
EXACT_ROWS = 4096


def plan_of(n_allowed: int, n: int) -> str:
    """``"exact"`` or ``"selector"``: how a search restricted to ``n_allowed`` of ``n`` rows
    runs (see the module docstring).

    Examples
    --------
    >>> plan_of(500, 1_000_000), plan_of(500_000, 1_000_000)
    ('exact', 'selector')
    """
    if n_allowed <= EXACT_ROWS or n_allowed < EXACT_SHARE * n:
        return "exact"
    return "selector"


def exact_knn(
    q: np.ndarray, vecs: np.ndarray, rows: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(distances, rows)`` of the ``k`` nearest of ``vecs`` (whose rows are ``rows``),
    FAISS-style distances, ``-1`` rows where fewer exist."""
    nq = len(q)
    kk = min(k, len(vecs))
    if kk == 0:
        return _empty(nq, k, metric)
    dist, idx = faiss.knn(
        np.ascontiguousarray(q, np.float32),
        np.ascontiguousarray(vecs, np.float32),
        kk,
        metric=faiss_metric(metric),  # type: ignore[arg-type]
    )
    found = np.where(idx >= 0, np.asarray(rows, np.int64)[np.maximum(idx, 0)], -1)
    if kk < k:
        d2, r2 = _empty(nq, k - kk, metric)
        dist, found = np.hstack([dist, d2]), np.hstack([found, r2])
    return dist.astype(np.float32), found


def _empty(nq: int, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    fill = -np.inf if higher_is_closer(metric) else np.inf  # type: ignore[arg-type]
    return np.full((nq, k), fill, np.float32), np.full((nq, k), -1, np.int64)


def _merge(
    parts: list[tuple[np.ndarray, np.ndarray]], k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    dist = np.hstack([p[0] for p in parts])
    rows = np.hstack([p[1] for p in parts])
    key = np.where(rows >= 0, -dist if higher_is_closer(metric) else dist, np.inf)  # type: ignore[arg-type]
    pick = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, pick, 1), np.take_along_axis(rows, pick, 1)


def _params(index: faiss.Index, sel: Any, share: float) -> Any:
    """``SearchParameters`` with selector ``sel``, the search knob raised by ``1 / share``."""
    knob = knob_of(index)
    if knob is None:
        params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
    else:
        params = knob.parameters(index, sel)
        value = knob.clip(index, math.ceil(knob.get(index) / max(share, 1e-9)))
        if knob.name == "efSearch":
            value = min(value, 4096)
        setattr(params, knob.name, int(value))
    if isinstance(faiss.downcast_index(index), faiss.IndexPreTransform):
        outer = faiss.SearchParametersPreTransform()
        outer.index_params = params
        outer.sel = sel
        return outer, params
    return params, None


def faiss_part(
    index: SimilarityIndex, q: np.ndarray, k: int, allowed: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best allowed FAISS candidates of each query, through an id selector."""
    fi = index.faiss_index
    ntotal = int(fi.ntotal)
    order = index.order
    ok = allowed if order is None else np.zeros(ntotal, bool)
    if order is not None:
        live = order >= 0
        ok[live] = allowed[order[live]]
    n_ok = int(ok.sum())
    kk = min(k, n_ok)
    packed = np.packbits(ok, bitorder="little")
    sel = faiss.IDSelectorBitmap(ntotal, faiss.swig_ptr(packed))
    try:
        params, keep = _params(fi, sel, share)
        dist, found = fi.search(q, kk, params=params)
        del keep
    except RuntimeError:  # no id selectors (LSH): search wider, keep the allowed
        wide = min(ntotal, max(kk, math.ceil(kk / max(share, 1e-9)) * 2))
        dist, found = fi.search(q, wide)
        good = (found >= 0) & ok[np.maximum(found, 0)]
        pick = np.argsort(~good, axis=1, kind="stable")[:, :kk]
        found = np.where(np.take_along_axis(good, pick, 1), np.take_along_axis(found, pick, 1), -1)
        dist = np.take_along_axis(dist, pick, 1)
    rows = found if order is None else np.where(found >= 0, order[np.maximum(found, 0)], -1)
    if kk < k:
        d2, r2 = _empty(len(q), k - kk, index.metric)
        dist, rows = np.hstack([dist, d2]), np.hstack([rows, r2])
    return dist, rows


def search_allowed(
    index: SimilarityIndex, q: np.ndarray, k: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS-style ``(distances, rows)`` ``[nq, k]`` of prepared queries over the rows where
    ``allowed`` is true (best first, ``-1`` where fewer exist), re-ranked when the index says."""
    n = len(index)
    metric = index.metric
    nq = len(q)
    n_allowed = int(allowed.sum())
    if n_allowed == 0 or k == 0:
        return _empty(nq, max(k, 0), metric)
    n_cand = min(max(k, index.rerank), n_allowed)
    pending = np.zeros(n, bool)
    pending[index.delta_rows] = True
    in_faiss = allowed & ~pending
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    approx = False
    if in_faiss.any():
        if plan_of(n_allowed, n) == "exact":
            rows = np.flatnonzero(in_faiss)
            parts.append(exact_knn(q, index.row_vectors(rows), rows, n_cand, metric))
        else:
            parts.append(faiss_part(index, q, n_cand, in_faiss, n_allowed / n))
            approx = not index.keeps_vectors
    d_ok = allowed[index.delta_rows]
    if d_ok.any():
        parts.append(
            exact_knn(q, index.delta_vectors[d_ok], index.delta_rows[d_ok], n_cand, metric)
        )
    if len(parts) == 1:
        dist, rows = parts[0]
    elif approx and not index.rerank:  # lossy codes beside exact scores: score them all exactly
        dist, rows = np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])
        return index._exact_rerank(q, rows, k)
    else:
        dist, rows = _merge(parts, n_cand, metric)
    if index.rerank and approx:
        return index._exact_rerank(q, rows, k)
    return dist[:, :k], rows[:, :k]
