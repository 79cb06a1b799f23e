"""Evaluating an index: recall@1/10/100 against exact search, queries/s, memory, build time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import ConfigError, StoreError
from ..store import FeatureStore
from .exact import ExactKnn, drop_self, recall_at_k
from .metric import prepare
from .params import get_search_params, set_search_params
from .persist import INDEX_FILE
from .similarity import SimilarityIndex
from .stores import StoreSet
from .table import format_table


@dataclass
class EvalRow:
    """One setting of the index's search parameter, measured."""

    params: dict[str, int]
    recall: dict[int, float]
    queries_per_s: float


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """The report as a printable table."""
        head = (
            f"index {self.factory} ({self.kind}), {self.n} x {self.dim}, {self.metric}; "
            f"{self.n_queries} queries: {self.queries}"
        )
        headers = [
            "search params",
            *(f"recall@{k}" for k in self.ks),
            "queries/s",
            "memory MB",
            "build s",
        ]
        mb = self.index_bytes / 1e6
        rows: list[list[Any]] = []
        for r in self.rows:
            name = ", ".join(f"{k}={v}" for k, v in r.params.items()) or "(exact)"
            rows.append(
                [name, *(r.recall[k] for k in self.ks), r.queries_per_s, mb, self.build_seconds]
            )
        rows.append(
            [
                "exact, streamed from stores",
                *(1.0 for _ in self.ks),
                self.exact_queries_per_s,
                None,
                None,
            ]
        )
        return head + "\n" + format_table(headers, rows)


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
            f"{e} The exact ground truth is computed from the index's source stores; if they "
            "moved, pass their new paths with stores=[...] (CLI: --store)."
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


def evaluate_index(
    index: SimilarityIndex,
    *,
    queries: str | Path | FeatureStore | None = None,
    n_queries: int = 1000,
    ks: Sequence[int] = (1, 10, 100),
    params: Sequence[dict[str, int]] | None = None,
    stores: Sequence[str | Path] | None = None,
    seed: int = 1,
    batch_size: int = 65536,
) -> EvalReport:
    """Measure recall@k against exact search, queries/s, memory and build time.

    Parameters
    ----------
    index
        The index to evaluate.
    queries
        A feature store of query vectors (same backbone). Default: ``n_queries`` random rows
        of the index's own stores, each left out of its own results.
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

    Returns
    -------
    EvalReport
        ``report.table()`` prints it.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks={list(ks)}: recall@k needs positive k values.")
    if n_queries < 1:
        raise ConfigError(f"n_queries={n_queries}: it must be positive.")
    rng = np.random.default_rng(seed)
    with _open_sources(index, stores) as ss:
        n = len(ss)
        self_rows: np.ndarray | None
        if queries is None:
            q_rows = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
            xq = prepare(ss.read_rows(q_rows), index.metric)
            self_rows, desc = q_rows, "random rows of the index, each left out of its own results"
            ks = [k for k in ks if k < n] or [max(1, n - 1)]
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
            self_rows = None
            ks = [k for k in ks if k <= n] or [n]
        kmax = max(ks)
        extra = 1 if self_rows is not None else 0
        exact = ExactKnn(xq, kmax + extra, index.metric)
        t0 = time.perf_counter()
        for start, feats in ss.iter_batches(batch_size):
            exact.add(prepare(feats, index.metric), start)
        truth = exact.result()[1]
        exact_qps = len(xq) / max(time.perf_counter() - t0, 1e-9)
    if self_rows is not None:
        truth = drop_self(truth, self_rows)

    before = get_search_params(index.faiss_index)
    settings = list(params) if params else [before]
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
    )
    try:
        for p in settings:
            set_search_params(index.faiss_index, dict(p))
            index.faiss_index.search(xq[: min(len(xq), 16)], kmax + extra)  # warm-up
            t0 = time.perf_counter()
            _, found = index.faiss_index.search(xq, kmax + extra)
            qps = len(xq) / max(time.perf_counter() - t0, 1e-9)
            if self_rows is not None:
                found = drop_self(found, self_rows)
            report.rows.append(
                EvalRow(
                    get_search_params(index.faiss_index),
                    {k: recall_at_k(found, truth, k) for k in ks},
                    qps,
                )
            )
    finally:
        set_search_params(index.faiss_index, before)
    return report
