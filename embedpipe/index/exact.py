"""Exact nearest neighbours computed out-of-core, and recall against them."""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from .metric import Metric, faiss_metric, higher_is_closer


class ExactKnn:
    """Exact top-``k`` of fixed queries, fed database batches one at a time (flat memory).

    Parameters
    ----------
    queries
        Prepared query vectors (see :func:`~embedpipe.index.metric.prepare`).
    k
        Neighbours to keep per query.
    metric
        The index metric.
    """

    def __init__(self, queries: np.ndarray, k: int, metric: Metric) -> None:
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.k = int(k)
        self.metric = metric
        self._heap = faiss.ResultHeap(len(self.queries), self.k, keep_max=higher_is_closer(metric))
        self._done = False

    def add(self, xb: np.ndarray, offset: int, rows: np.ndarray | None = None) -> None:
        """Merge a prepared database batch whose first row is global row ``offset`` (or whose
        rows are the global rows ``rows``, for a batch with some rows left out)."""
        if len(xb) == 0 or len(self.queries) == 0:
            return
        kk = min(self.k, len(xb))
        dist, found = faiss.knn(
            self.queries,
            np.ascontiguousarray(xb, dtype=np.float32),
            kk,
            metric=faiss_metric(self.metric),
        )
        if rows is not None:
            found = np.asarray(rows, np.int64)[found]
        else:
            found = found + np.int64(offset)
        self._heap.add_result(dist, found)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, rows)`` of shape ``[nq, k]``, best first (row ``-1`` where none)."""
        if not self._done:
            self._heap.finalize()
            self._done = True
        return self._heap.D, self._heap.I


def drop_self(rows: np.ndarray, self_rows: np.ndarray) -> np.ndarray:
    """Remove each query's own row from its result list (leave-one-out evaluation).

    ``rows`` has ``k + 1`` columns; the result has ``k``: the query's own row if present,
    else the last column, is dropped.
    """
    rows = np.asarray(rows)
    keep = rows != np.asarray(self_rows)[:, None]
    absent = keep.all(axis=1)
    keep[absent, -1] = False
    # A query whose own row appears twice (should not happen) would unbalance the reshape.
    extra = keep.sum(axis=1) != rows.shape[1] - 1
    if extra.any():
        for i in np.flatnonzero(extra):
            keep[i] = False
            keep[i, : rows.shape[1] - 1] = True
    return rows[keep].reshape(rows.shape[0], rows.shape[1] - 1)


def recall_per_query(found: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Each query's share of its true ``k`` nearest rows among the ``k`` rows found.

    Rows ``-1`` in ``truth`` (fewer than ``k`` vectors exist) are not counted against.
    """
    found = np.asarray(found)[:, :k]
    truth = np.asarray(truth)[:, :k]
    hits = (found[:, :, None] == truth[:, None, :]) & (truth[:, None, :] >= 0)
    n_true = np.maximum((truth >= 0).sum(axis=1), 1)
    return hits.any(axis=1).sum(axis=1) / n_true


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean recall@k over queries (see :func:`recall_per_query`); NaN without queries."""
    r = recall_per_query(found, truth, k)
    return float(r.mean()) if r.size else float("nan")


def rerank_exact(
    q: np.ndarray,
    cand: np.ndarray,
    vectors_of: Callable[[np.ndarray], np.ndarray],
    metric: Metric,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate rows exactly: ``(distances, rows)`` of the ``k`` best per query, best
    first, with FAISS-style distances (inner product, or squared L2).

    ``cand`` is ``[nq, c]`` (``-1``: none); ``vectors_of(rows)`` gives the prepared float
    vectors of sorted unique rows. Works in chunks of about 16 MB.
    """
    valid = cand >= 0
    uniq, inv = np.unique(np.where(valid, cand, cand.max(initial=0)), return_inverse=True)
    inv = inv.reshape(cand.shape)
    exact = np.full(cand.shape, np.nan, np.float32)
    if uniq.size and valid.any():
        vecs = vectors_of(uniq)
        step = max(1, 4_000_000 // max(1, cand.shape[1] * vecs.shape[1]))
        for s in range(0, len(q), step):
            cv = vecs[inv[s : s + step]]  # [chunk, candidates, dim]
            if metric == "l2":
                exact[s : s + step] = ((cv - q[s : s + step, None, :]) ** 2).sum(axis=2)
            else:
                exact[s : s + step] = np.einsum("qcd,qd->qc", cv, q[s : s + step])
    higher = higher_is_closer(metric)
    key = np.where(valid, -exact if higher else exact, np.inf)
    idx = np.argsort(key, axis=1, kind="stable")[:, :k]
    rows = np.take_along_axis(cand, idx, axis=1)
    dist = np.take_along_axis(exact, idx, axis=1)
    fill = -np.inf if higher else np.inf
    return np.where(rows >= 0, dist, fill).astype(np.float32), rows
