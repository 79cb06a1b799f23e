"""Tuning the search parameter to the smallest value that reaches a target recall@k."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import faiss
import numpy as np

from .exact import drop_self, recall_per_query
from .params import param_range, search_param, set_search_params

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    """The outcome of :func:`tune_search_param`.

    ``recall`` is the mean recall@k on the tuning queries at ``value``, ``recall_low`` its
    lower confidence bound (mean − 2 standard errors), which is what must reach the target.
    ``curve`` lists ``[value, recall, recall_low, queries_per_s]`` for every value tried.
    ``reached`` is False when even the largest value misses the target (``value`` is then the
    one with the best recall).
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    index: faiss.Index, queries: np.ndarray, truth: np.ndarray, self_rows: np.ndarray | None, k: int
) -> tuple[float, float, float]:
    """Mean recall@k, its lower bound (mean − 2 s.e.) and queries/s at the current parameters.

    With ``self_rows`` the queries are database rows and their own row is left out.
    """
    kk = k + 1 if self_rows is not None else k
    t0 = time.perf_counter()
    _, rows = index.search(queries, kk)
    dt = time.perf_counter() - t0
    if self_rows is not None:
        rows = drop_self(rows, self_rows)
    r = recall_per_query(rows, truth, k)
    sem = float(r.std(ddof=1) / np.sqrt(r.size)) if r.size > 1 else 0.0
    return float(r.mean()), float(r.mean()) - 2.0 * sem, len(queries) / max(dt, 1e-9)


def tune_search_param(
    index: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    k: int,
    target_recall: float,
    self_rows: np.ndarray | None = None,
) -> TuneResult:
    """Find the smallest ``nprobe`` / ``efSearch`` whose recall@k reaches ``target_recall``.

    The target must be met by the recall's lower confidence bound (mean − 2 standard errors
    over the queries), so that the chosen value also reaches it on new queries. Doubles the value from the bottom of its range until the target is met, then bisects
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
    """
    name = search_param(index)
    if name is None:
        raise ValueError("this index has no search parameter to tune")
    lo, hi = param_range(index)
    tried: dict[int, tuple[float, float, float]] = {}

    def at(v: int) -> float:
        if v not in tried:
            set_search_params(index, {name: v})
            tried[v] = measure(index, queries, truth, self_rows, k)
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
    )
