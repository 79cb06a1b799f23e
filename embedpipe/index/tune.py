"""Tuning the search parameter to the smallest value that reaches a target recall@k."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from .exact import drop_self, recall_per_query, rerank_exact
from .metric import Metric, prepare
from .params import param_range, search_param, set_search_params

if TYPE_CHECKING:
    from .stores import StoreSet

log = logging.getLogger(__name__)

#: z of a two-sided 95% normal interval.
Z95 = 1.96
SearchFn = Callable[[np.ndarray, int], np.ndarray]


def recall_interval(per_query: np.ndarray) -> tuple[float, float, float]:
    """Mean recall and its 95% interval (mean ± 1.96 standard errors, within [0, 1]).

    Examples
    --------
    >>> m, lo, hi = recall_interval(np.array([1.0, 0.9, 0.8, 1.0]))
    >>> round(m, 3), round(lo, 3), round(hi, 3)
    (0.925, 0.831, 1.0)
    """
    r = np.asarray(per_query, np.float64)
    if r.size == 0:
        return float("nan"), float("nan"), float("nan")
    sem = float(r.std(ddof=1) / np.sqrt(r.size)) if r.size > 1 else 0.0
    m = float(r.mean())
    return m, max(0.0, m - Z95 * sem), min(1.0, m + Z95 * sem)


def rerank_search(
    index: faiss.Index,
    n_candidates: int,
    metric: Metric,
    ss: StoreSet,
    order: np.ndarray | None,
) -> SearchFn:
    """A search that fetches ``n_candidates`` per query and re-ranks them exactly from the
    stores' float features (index row ``r`` is store row ``order[r]``), as
    :meth:`SimilarityIndex.search_prepared` does once built."""

    def search(q: np.ndarray, k: int) -> np.ndarray:
        _, cand = index.search(q, max(k, n_candidates))

        def vectors_of(rows: np.ndarray) -> np.ndarray:
            return prepare(ss.read_rows(rows if order is None else order[rows]), metric)

        return rerank_exact(q, cand, vectors_of, metric, k)[1]

    return search


@dataclass
class TuneResult:
    """The outcome of :func:`tune_search_param`.

    ``recall`` is the mean recall@k on the held-out tuning queries at ``value``;
    ``recall_low`` / ``recall_high`` its 95% interval (mean ± 1.96 standard errors over the
    queries); the lower end is what must reach the target. ``curve`` lists ``[value, recall,
    recall_low, queries_per_s]`` for every value tried. ``reached`` is False when even the
    largest value misses the target (``value`` is then the one with the best recall).
    ``queries`` says what the queries were; ``rerank`` the candidates re-ranked per query.
    """

    param: str
    value: int
    recall: float
    recall_low: float
    target_recall: float
    k: int
    n_queries: int
    reached: bool
    curve: list[list[float]] = field(default_factory=list)
    recall_high: float = float("nan")
    queries: str = ""
    rerank: int = 0

    def summary(self) -> str:
        """One line, e.g. ``recall@10 0.9612 (95% interval 0.9541-0.9683) on 1000 held-out
        queries at nprobe=12: target 0.95 reached``; a miss is said plainly."""
        status = (
            "reached"
            if self.reached
            else "NOT reached: the best value is shown; see the hint in the log"
        )
        return (
            f"recall@{self.k} {self.recall:.4f} (95% interval {self.recall_low:.4f}-"
            f"{self.recall_high:.4f}) on {self.n_queries} queries ({self.queries}) at "
            f"{self.param}={self.value}"
            + (f" with exact re-rank of {self.rerank}" if self.rerank else "")
            + f": target {self.target_recall} {status}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    index: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    self_rows: np.ndarray | None,
    k: int,
    search: SearchFn | None = None,
) -> tuple[float, float, float, float]:
    """Mean recall@k, its 95% interval and queries/s at the current parameters.

    With ``self_rows`` the queries are database rows and their own row is left out.
    ``search(q, k) -> rows`` replaces ``index.search`` (re-ranking).
    """
    kk = k + 1 if self_rows is not None else k
    t0 = time.perf_counter()
    rows = search(queries, kk) if search is not None else index.search(queries, kk)[1]
    dt = time.perf_counter() - t0
    if self_rows is not None:
        rows = drop_self(rows, self_rows)
    m, lo, hi = recall_interval(recall_per_query(rows, truth, k))
    return m, lo, len(queries) / max(dt, 1e-9), hi


def tune_search_param(
    index: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    k: int,
    target_recall: float,
    self_rows: np.ndarray | None = None,
    search: SearchFn | None = None,
    queries_desc: str = "",
    rerank: int = 0,
) -> TuneResult:
    """Find the smallest ``nprobe`` / ``efSearch`` whose recall@k reaches ``target_recall``.

    The target must be met by the lower end of the recall's 95% interval (mean − 1.96
    standard errors over the queries), so that the chosen value also reaches it on new
    queries. Doubles the value from the bottom of its range until the target is met, then bisects
    between the last miss and the first hit (recall grows with the value). The index is left
    set to the chosen value.

    Parameters
    ----------
    index
        A trained, filled FAISS index with a search parameter.
    queries
        Prepared query vectors, held out from training.
    truth
        Their exact ``k`` nearest rows (own rows already dropped when ``self_rows`` is given).
    k, target_recall
        The recall@k to reach.
    self_rows
        Each query's own row in the index when the queries are database rows.
    search
        ``search(q, k) -> rows`` instead of ``index.search`` (exact re-ranking).
    queries_desc, rerank
        Recorded in the result (what the queries were; candidates re-ranked).
    """
    name = search_param(index)
    if name is None:
        raise ValueError("this index has no search parameter to tune")
    lo, hi = param_range(index)
    tried: dict[int, tuple[float, float, float, float]] = {}

    def at(v: int) -> float:
        if v not in tried:
            set_search_params(index, {name: v})
            tried[v] = measure(index, queries, truth, self_rows, k, search)
            log.debug("%s=%d: recall@%d %.4f (low %.4f)", name, v, k, tried[v][0], tried[v][1])
        return tried[v][1]

    miss, v = 0, max(lo, 1)
    while at(v) < target_recall and v < hi:
        miss, v = v, min(hi, v * 2)
    hit = v
    reached = tried[hit][1] >= target_recall
    if reached:
        a, b = max(miss, lo - 1), hit  # at(a) < target (or a below range), at(b) >= target
        while b - a > 1:
            mid = (a + b) // 2
            if at(mid) >= target_recall:
                b = mid
            else:
                a = mid
        hit = b
    else:
        best = max(tried, key=lambda x: (tried[x][0], -x))
        hit = best
        hint = (
            "HNSW's graph does not reach these neighbours (common on strongly clustered data); "
            "use kind='ivf' or 'auto'"
            if name == "efSearch"
            else "compressed codes cannot rank these neighbours; use kind='ivf' (full vectors), "
            "a larger memory budget, or kind='flat'"
        )
        log.warning(
            "target recall@%d %.3f not reached: best %.4f at %s=%d. %s.",
            k,
            target_recall,
            tried[best][0],
            name,
            best,
            hint,
        )
    set_search_params(index, {name: hit})
    return TuneResult(
        param=name,
        value=int(hit),
        recall=float(tried[hit][0]),
        recall_low=float(tried[hit][1]),
        target_recall=float(target_recall),
        k=int(k),
        n_queries=int(len(queries)),
        reached=bool(reached),
        curve=[
            [float(x), *(round(v, 5) for v in tried[x][:2]), round(tried[x][2], 1)]
            for x in sorted(tried)
        ],
        recall_high=float(tried[hit][3]),
        queries=queries_desc,
        rerank=int(rerank),
    )
