"""Evaluating an index: recall@1/10/100 (with 95% intervals) against exact search on held-out
queries, queries/s, memory, build time.

The default queries are random rows of the index's stores, held out: the ground truth is
exact search over the other rows, and the index's results leave the query rows out too (for
IVF and Flat indexes that is exactly a search of the index without them; an HNSW graph still
holds them, so the build's tuning, on rows kept out of the graph, is the stricter figure).
Query stores of the same backbone (real queries, another split) are reported separately.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import faiss
import numpy as np

from ..errors import Arg, ConfigError, Fix, StoreError
from ..store import FeatureStore
from .exact import ExactKnn, recall_per_query
from .metric import prepare
from .params import get_search_params, search_param, set_search_params
from .persist import INDEX_FILE
from .similarity import SimilarityIndex
from .stores import StoreSet
from .table import format_table
from .tune import recall_interval

if TYPE_CHECKING:
    from typing import Unpack  # Python 3.11+; only for the type checker


@dataclass
class EvalRow:
    """One setting of the index's search parameter, measured."""

    params: dict[str, int]
    recall: dict[int, float]
    queries_per_s: float
    recall_ci: dict[int, list[float]] = field(default_factory=dict)


@dataclass
class EvalReport:
    """What :func:`evaluate_index` measured.

    ``exact_queries_per_s`` is the exact search that made the ground truth, streamed from
    the stores on disk (reads included).
    """

    factory: str
    kind: str
    n: int
    dim: int
    metric: str
    n_queries: int
    queries: str
    ks: list[int]
    index_bytes: int
    build_seconds: float
    exact_queries_per_s: float
    rows: list[EvalRow] = field(default_factory=list)
    rerank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """The report as a printable table."""
        head = (
            f"index {self.factory} ({self.kind}), {self.n} x {self.dim}, {self.metric}"
            + (f", exact re-rank of {self.rerank} candidates" if self.rerank else "")
            + f"; {self.n_queries} queries: {self.queries}"
        )
        kci = 10 if 10 in self.ks else self.ks[-1]
        headers = [
            "search params",
            *(f"recall@{k}" for k in self.ks),
            f"95% interval @{kci}",
            "queries/s",
            "memory MB",
            "build s",
        ]
        mb = self.index_bytes / 1e6
        rows: list[list[Any]] = []
        for r in self.rows:
            name = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "(exact)"
            ci = r.recall_ci.get(kci)
            rows.append(
                [
                    name,
                    *(r.recall[k] for k in self.ks),
                    f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else None,
                    r.queries_per_s,
                    mb,
                    self.build_seconds,
                ]
            )
        rows.append(
            [
                "exact, streamed from stores",
                *(1.0 for _ in self.ks),
                None,
                self.exact_queries_per_s,
                None,
                None,
            ]
        )
        return head + "\n" + format_table(headers, rows)


#: Largest HNSW index that eval-index copies without its query rows (a graph build).
GRAPH_COPY_MAX = 200_000


def _graph_without(
    index: SimilarityIndex, ss: StoreSet, q_rows: np.ndarray, batch_size: int
) -> SimilarityIndex:
    """A copy of an HNSW index built over every row but ``q_rows``, so that evaluation
    queries are truly unseen (a held-out row left in the graph is found through its own
    links: its recall is flattered)."""
    from .build import _prefix
    from .kinds import type_of
    from .metric import faiss_metric
    from .params import hnsw_of

    m = index.meta
    sub_dim = m.truncate_dim or m.dim
    kind_type = type_of(m.kind)
    fm = faiss_metric(m.metric)
    fi = faiss.index_factory(sub_dim, m.factory, kind_type.faiss_metric(fm) if kind_type else fm)
    src, dst = hnsw_of(index.faiss_index), hnsw_of(fi)
    if src is not None and dst is not None:
        dst.hnsw.efConstruction = src.hnsw.efConstruction
    if m.truncate_dim:
        fi = _prefix(fi, m.dim, m.truncate_dim, m.metric)
    keep = np.setdiff1d(np.arange(len(index)), q_rows)
    for s in range(0, keep.size, batch_size):
        fi.add(prepare(ss.read_rows(keep[s : s + batch_size]), m.metric))
    return SimilarityIndex(
        fi, m, index.ids, index.labels, index.source, order=keep.astype(np.int64)
    )


def _index_bytes(index: SimilarityIndex) -> int:
    if index.path is not None and (index.path / INDEX_FILE).is_file():
        return (index.path / INDEX_FILE).stat().st_size
    return int(faiss.serialize_index(index.faiss_index).size)


def _open_sources(index: SimilarityIndex, stores: Sequence[str | Path] | None) -> StoreSet:
    paths = list(stores) if stores else [s.path for s in index.meta.sources]
    try:
        ss = StoreSet(paths, prefix_ids=True)
    except StoreError as e:
        raise StoreError(
            *e.parts,
            " The exact ground truth is computed from the index's source stores",
            Fix(
                "; if they moved, pass their new paths with ", Arg("stores", py="[...]", cli="PATH")
            ),
            ".",
        ) from None
    sizes = [len(fs) for fs in ss.stores]
    want = [s.n_rows for s in index.meta.sources]
    found = ss.fingerprint
    if found != index.fingerprint or sizes != want:
        ss.close()
        raise ConfigError(
            f"stores {[str(p) for p in paths]} ({sizes} rows, fingerprint {found}) are "
            f"not the ones this index was built from ({want} rows, fingerprint "
            f"{index.fingerprint}). Pass the index's own source stores."
        )
    return ss


class EvalOptions(TypedDict, total=False):
    """The options of :func:`evaluate_index` beside ``queries`` (defaults: those of
    :func:`evaluate_query_sets`)."""

    n_queries: int
    ks: Sequence[int]
    params: Sequence[dict[str, int]] | None
    stores: Sequence[str | Path] | None
    seed: int
    batch_size: int


def evaluate_index(
    index: SimilarityIndex,
    *,
    queries: str | Path | FeatureStore | None = None,
    **options: Unpack[EvalOptions],
) -> EvalReport:
    """Measure recall@k (with 95% intervals) against exact search, queries/s, memory and
    build time, on one query set.

    Parameters
    ----------
    index
        The index to evaluate.
    queries
        A feature store of query vectors (same backbone). Default: ``n_queries`` random rows
        of the index's own stores, held out of the ground truth and of the results.
    n_queries
        How many queries (sampled).
    ks
        The k of each recall@k.
    params
        Search-parameter settings to measure (``[{"nprobe": 4}, {"nprobe": 16}]``); default
        the index's current one. The index is left as it was.
    stores
        Where the index's source stores are now, if they moved.
    seed
        Query sample seed (default differs from the build's, so tuning queries are not reused).
    batch_size
        Rows read at a time for the exact ground truth.

    Returns
    -------
    EvalReport
        ``report.table()`` prints it.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(500, 8)).astype("float32")
    >>> from embedpipe.store import write_store
    >>> _ = write_store("e.h5", X, [f"v{i}" for i in range(500)])
    >>> from embedpipe.index import build_index
    >>> report = evaluate_index(build_index("e.h5", "flat"), n_queries=50, ks=(1, 10))
    >>> report.rows[0].recall, report.n_queries
    ({1: 1.0, 10: 1.0}, 50)
    """
    return evaluate_query_sets(index, [queries], **options)[0]


def evaluate_query_sets(
    index: SimilarityIndex,
    query_sets: Sequence[str | Path | FeatureStore | None],
    *,
    n_queries: int = 1000,
    ks: Sequence[int] = (1, 10, 100),
    params: Sequence[dict[str, int]] | None = None,
    stores: Sequence[str | Path] | None = None,
    seed: int = 1,
    batch_size: int = 65536,
) -> list[EvalReport]:
    """One :class:`EvalReport` per query set (``None``: held-out rows of the index's stores;
    a path or store: its rows), in order (see :func:`evaluate_index`)."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks={list(ks)}: recall@k needs positive k values.")
    if n_queries < 1:
        raise ConfigError(Arg("n_queries", n_queries), ": it must be positive.")
    out = []
    for queries in query_sets:
        rng = np.random.default_rng(seed)
        with _open_sources(index, stores) as ss:
            out.append(_evaluate_one(index, ss, queries, n_queries, ks, params, rng, batch_size))
    return out


def _evaluate_one(
    index: SimilarityIndex,
    ss: StoreSet,
    queries: str | Path | FeatureStore | None,
    n_queries: int,
    ks: list[int],
    params: Sequence[dict[str, int]] | None,
    rng: np.random.Generator,
    batch_size: int,
) -> EvalReport:
    n = len(ss)
    held = np.zeros(n, bool)
    searched = index
    if queries is None:
        n_q = min(n_queries, max(1, n // 2))
        q_rows = np.sort(rng.choice(n, size=n_q, replace=False))
        held[q_rows] = True
        xq = prepare(ss.read_rows(q_rows), index.metric)
        desc = "random rows of the index's stores, held out of the ground truth and the results"
        if search_param(index.faiss_index) == "efSearch":
            if len(index) <= GRAPH_COPY_MAX and not index.n_pending and not index.n_removed:
                searched = _graph_without(index, ss, q_rows, batch_size)
                desc += " and of the HNSW graph (a copy built without them: unseen queries)"
            else:
                desc += (
                    " (they stay in the HNSW graph, which flatters its recall; a graph copy "
                    f"without them is built only up to {GRAPH_COPY_MAX:,} rows)"
                )
        ks = [k for k in ks if k <= n - n_q] or [max(1, n - n_q)]
    else:
        fs = queries if isinstance(queries, FeatureStore) else FeatureStore(queries)
        try:
            fs.check_fingerprint(index.fingerprint, "evaluation queries")
            rows = np.sort(rng.choice(len(fs), size=min(n_queries, len(fs)), replace=False))
            xq = prepare(fs.read(rows), index.metric)
            desc = f"rows of {str(fs.path)!r}"
        finally:
            if fs is not queries:
                fs.close()
        q_rows = np.empty(0, np.int64)
        ks = [k for k in ks if k <= n] or [n]
    kmax = max(ks)
    exact = ExactKnn(xq, kmax, index.metric)
    t0 = time.perf_counter()
    for start, feats in ss.iter_batches(batch_size):
        keep = ~held[start : start + len(feats)]
        if keep.all():
            exact.add(prepare(feats, index.metric), start)
        else:
            exact.add(prepare(feats[keep], index.metric), start, rows=np.flatnonzero(keep) + start)
    truth = exact.result()[1]
    exact_qps = len(xq) / max(time.perf_counter() - t0, 1e-9)
    exclude = q_rows if q_rows.size and searched is index else None

    before = get_search_params(index.faiss_index)
    settings = list(params) if params else [before]
    if searched is not index:
        set_search_params(searched.faiss_index, before)
    report = EvalReport(
        factory=index.meta.factory,
        kind=index.meta.kind,
        n=len(index),
        dim=index.dim,
        metric=index.metric,
        n_queries=len(xq),
        queries=desc,
        ks=ks,
        index_bytes=_index_bytes(index),
        build_seconds=index.meta.build_seconds,
        exact_queries_per_s=exact_qps,
        rerank=index.rerank,
    )
    try:
        for p in settings:
            set_search_params(index.faiss_index, dict(p))
            set_search_params(searched.faiss_index, dict(p))
            searched.search_prepared(xq[: min(len(xq), 16)], kmax, exclude=exclude)  # warm-up
            t0 = time.perf_counter()
            _, found = searched.search_prepared(xq, kmax, exclude=exclude)
            qps = len(xq) / max(time.perf_counter() - t0, 1e-9)
            recall, ci = {}, {}
            for k in ks:
                m, lo, hi = recall_interval(recall_per_query(found, truth, k))
                recall[k], ci[k] = m, [round(lo, 5), round(hi, 5)]
            report.rows.append(EvalRow(get_search_params(index.faiss_index), recall, qps, ci))
    finally:
        set_search_params(index.faiss_index, before)
    return report
