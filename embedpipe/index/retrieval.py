"""Retrieval quality of an index: how well its neighbours are *relevant*, not only how many of
the exact neighbours it finds.

Relevance comes from labels (an item is relevant to a query of the same label) or from a
relevance file (one ``query id, item id`` pair per line: ``.csv`` / ``.tsv`` with those two
columns first, or ``.jsonl`` with ``query_id`` and ``item_id``). The metrics, each with a
bootstrap 95% interval over the queries:

- ``recall@k``: the share of queries with a relevant item among their first ``k`` hits
  (CLIP_benchmark's retrieval recall@k);
- ``MRR@k``: the mean reciprocal rank of the first relevant hit (0 when none in ``k``);
- ``nDCG@k``: binary-relevance DCG of the first ``k`` hits over the best possible;
- ``mAP@K``: the mean average precision of the first ``K`` (the largest ``k``) hits,
  each query's sum normalised by ``min(K, its number of relevant items)``.

Examples
--------
>>> import numpy as np
>>> rel = np.array([[0, 1, 0], [1, 0, 0]], bool)   # relevance of each query's hits, in order
>>> per = per_query_metrics(rel, n_relevant=np.array([1, 2]), ks=[1, 3])
>>> per["recall@1"].tolist(), per["MRR@3"].tolist()
([0.0, 1.0], [0.5, 1.0])
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Arg, ConfigError, Fix
from .metric import prepare

if TYPE_CHECKING:
    from ..store import FeatureStore
    from .similarity import SimilarityIndex

N_BOOT = 1000


def per_query_metrics(
    rel: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Each query's recall@k, MRR@k, nDCG@k (every ``k``) and mAP@max(k).

    ``rel[q, i]``: whether query ``q``'s ``i``-th hit is relevant; ``n_relevant[q]``: how
    many relevant items exist for it (in the searched rows).
    """
    rel = np.asarray(rel, bool)
    nq, width = rel.shape
    out: dict[str, np.ndarray] = {}
    ranks = np.arange(1, width + 1)
    gains = 1.0 / np.log2(ranks + 1)
    first = np.where(rel.any(axis=1), rel.argmax(axis=1) + 1, 0)
    for k in ks:
        kk = min(k, width)
        out[f"recall@{k}"] = rel[:, :kk].any(axis=1).astype(float)
        out[f"MRR@{k}"] = np.where((first > 0) & (first <= kk), 1.0 / np.maximum(first, 1), 0.0)
        dcg = (rel[:, :kk] * gains[:kk]).sum(axis=1)
        ideal = np.array([gains[: min(int(r), kk)].sum() for r in n_relevant])
        out[f"nDCG@{k}"] = np.where(ideal > 0, dcg / np.maximum(ideal, 1e-12), 0.0)
    kk = min(max(ks), width)
    prec = np.cumsum(rel[:, :kk], axis=1) / ranks[:kk]
    denom = np.minimum(np.asarray(n_relevant, float), kk)
    out[f"mAP@{max(ks)}"] = np.where(
        denom > 0, (prec * rel[:, :kk]).sum(axis=1) / np.maximum(denom, 1), 0.0
    )
    return out


def bootstrap(
    values: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and its bootstrap 95% interval (percentiles of ``n_boot`` resampled means)."""
    v = np.asarray(values, float)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


@dataclass
class RetrievalReport:
    """Retrieval metrics of one query set: ``metrics[name] = (mean, low, high)``."""

    queries: str
    relevance: str
    n_queries: int
    ks: list[int]
    metrics: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        metrics = {
            k: {"mean": round(m, 5), "ci95": [round(lo, 5), round(hi, 5)]}
            for k, (m, lo, hi) in self.metrics.items()
        }
        return {**asdict(self), "metrics": metrics}

    def table(self) -> str:
        from .table import format_table

        head = (
            f"retrieval on {self.n_queries} queries ({self.queries}); relevance: "
            f"{self.relevance}; 95% bootstrap intervals"
        )
        rows = [
            [name, f"{m:.4f}", f"{lo:.4f}-{hi:.4f}"] for name, (m, lo, hi) in self.metrics.items()
        ]
        return head + "\n" + format_table(["metric", "value", "95% interval"], rows)


def read_relevance(path: str | Path) -> dict[str, set[str]]:
    """``{query id: {relevant item ids}}`` from a ``.csv`` / ``.tsv`` (query id, item id) or
    ``.jsonl`` (``query_id``, ``item_id``) file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"relevance file {str(p)!r} does not exist.")
    out: dict[str, set[str]] = {}
    if p.suffix == ".jsonl":
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.setdefault(str(d["query_id"]), set()).add(str(d["item_id"]))
            except (ValueError, KeyError, TypeError):
                raise ConfigError(
                    f'{str(p)!r} line {i}: write {{"query_id": ..., "item_id": ...}}.'
                ) from None
        return out
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t" if p.suffix == ".tsv" else ",")
        for i, row in enumerate(reader, 1):
            if len(row) < 2:
                raise ConfigError(f"{str(p)!r} line {i}: write 'query id, item id'.")
            if i == 1 and row[0].strip().lower() in ("query_id", "query"):
                continue
            out.setdefault(row[0].strip(), set()).add(row[1].strip())
    return out


def evaluate_retrieval(
    index: SimilarityIndex,
    *,
    queries: str | Path | FeatureStore | None = None,
    relevance: str | Path | None = None,
    ks: Sequence[int] = (1, 5, 10),
    n_queries: int = 1000,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> RetrievalReport:
    """Retrieval metrics of ``index`` (see the module docstring).

    Parameters
    ----------
    index
        The index searched.
    queries
        A store of query vectors (same backbone); default: ``n_queries`` random rows of the
        index, each left out of every result (and of the relevant items).
    relevance
        A relevance file; default: labels (same label = relevant; unlabelled queries skipped).
    ks
        The cut-offs.
    """
    from ..store import FeatureStore

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks={ks}: give positive cut-offs.")
    rng = np.random.default_rng(seed)
    rel_map = read_relevance(relevance) if relevance is not None else None
    exclude = None
    if queries is None:
        n_q = min(n_queries, max(1, len(index) // 2))
        if rel_map is not None:  # the file's queries that are rows of the index
            ids = index.ids.astype(str)
            q_rows = np.flatnonzero([i in rel_map for i in ids.tolist()])
            if q_rows.size > n_q:
                q_rows = np.sort(rng.choice(q_rows, size=n_q, replace=False))
        else:
            q_rows = np.sort(rng.choice(len(index), size=n_q, replace=False))
        q_ids = index.ids[q_rows].astype(str)
        q_labels = index.labels[q_rows]
        xq = index.row_vectors(q_rows)
        exclude = q_rows
        desc = "random rows of the index, each left out of the results"
    else:
        fs = queries if isinstance(queries, FeatureStore) else FeatureStore(queries)
        try:
            fs.check_fingerprint(index.fingerprint, "retrieval queries")
            rows = np.sort(rng.choice(len(fs), size=min(n_queries, len(fs)), replace=False))
            if rel_map is not None:
                rows = np.array([i for i, x in enumerate(fs.ids.tolist()) if str(x) in rel_map])
            xq = fs.read(rows)
            q_ids = fs.ids[rows].astype(str)
            names = np.array([*fs.classes, ""], dtype=object)
            q_names = names[np.where(fs.labels[rows] >= 0, fs.labels[rows], len(fs.classes))]
            pos = {c: i for i, c in enumerate(index.classes)}
            q_labels = np.array([pos.get(str(c), -1) if c else -1 for c in q_names], np.int64)
            desc = f"rows of {str(fs.path)!r}"
        finally:
            if fs is not queries:
                fs.close()
    k_max = min(max(ks), len(index) - (0 if exclude is None else len(exclude)))
    _, found = index.search_prepared(prepare(xq, index.metric), k_max, exclude=exclude)
    if rel_map is None:
        keep = q_labels >= 0
        if not keep.any():
            raise ConfigError(
                "relevance from labels needs labelled queries; these have none.",
                Fix(" Give a relevance file: ", Arg("relevance", ..., cli="FILE"), does="."),
            )
        counts = np.bincount(index.labels[index.labels >= 0], minlength=len(index.classes) + 1)
        if exclude is not None:
            lab_ex = index.labels[exclude]
            counts = counts - np.bincount(lab_ex[lab_ex >= 0], minlength=len(counts))
        found, q_labels = found[keep], q_labels[keep]
        rel = (found >= 0) & (index.labels[np.maximum(found, 0)] == q_labels[:, None])
        n_rel = counts[q_labels]
        how = "same label"
    else:
        keep = np.array([q in rel_map for q in q_ids])
        if not keep.any():
            raise ConfigError(
                f"no query of the relevance file {str(relevance)!r} is among the queries "
                f"(e.g. {q_ids[:3].tolist()}); its first column must hold query ids."
            )
        found, q_ids = found[keep], q_ids[keep]
        ids = index.ids.astype(str)
        rel = np.array(
            [
                [r >= 0 and ids[r] in rel_map[q] for r in row]
                for q, row in zip(q_ids, found, strict=True)
            ],
            bool,
        ).reshape(found.shape)
        n_rel = np.array([len(rel_map[q]) for q in q_ids])
        how = f"file {str(relevance)!r}"
    per = per_query_metrics(rel, n_rel, ks)
    report = RetrievalReport(desc, how, int(len(found)), ks)
    for name, values in per.items():
        report.metrics[name] = bootstrap(values, n_boot, seed)
    return report
