"""``curate()``: one kNN graph over the stores, then every check, as one table."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Arg, ConfigError
from .corpus import Corpus, open_corpus
from .duplicates import Threshold, choose_threshold, clusters, exact_pairs, near_pairs
from .graph import GraphMethod, KnnGraph, build_knn_graph
from .labels import Engine, LabelIssues, find_label_issues
from .outliers import Outliers, outlier_scores

#: The issue kinds, in the order tables list them.
ISSUES = ("leak", "exact_duplicate", "near_duplicate", "label_issue", "outlier")
#: The table's columns.
COLUMNS = tuple("split id content issue score related label suggested_label group".split())
#: Related ids listed per row at most.
MAX_RELATED = 20


@dataclass
class CurateResult:
    """What :func:`curate` found.

    Attributes
    ----------
    table
        A :class:`pandas.DataFrame`, one row per (item, issue): ``split``, ``id``, ``content``,
        ``issue`` (one of :data:`ISSUES`), ``score`` (higher is worse: similarity for
        duplicates and leaks, ``1 - p(label)`` for label issues, mean neighbour distance for
        outliers), ``related`` (ids of the other items involved; ``split:id`` when several
        stores), ``label``, ``suggested_label`` and ``group`` (duplicate cluster, or -1).
    threshold
        The near-duplicate threshold and how it was chosen.
    summary
        Counts per issue, rows, stores, graph method and timings (JSON-ready).
    corpus, graph, outliers, labels
        The pieces, for the map and for further work.
    """

    table: Any
    threshold: Threshold
    summary: dict[str, Any]
    corpus: Corpus
    graph: KnnGraph
    outliers: Outliers
    labels: LabelIssues | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The summary and every flagged item as plain JSON types."""
        items = []
        for rec in self.table.to_dict(orient="records"):
            rec["related"] = list(rec["related"])
            rec["score"] = round(float(rec["score"]), 6)
            rec["group"] = int(rec["group"])
            items.append(rec)
        return {"summary": self.summary, "issues": items}

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``issues.parquet``, ``issues.csv`` and ``summary.json`` into folder ``out``
        (each through a temporary file renamed into place)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "parquet": out / "issues.parquet",
            "csv": out / "issues.csv",
            "summary": out / "summary.json",
        }
        flat = self.table.copy()
        flat["related"] = [" ".join(r) for r in flat["related"]]
        _atomic(paths["csv"], lambda p: flat.to_csv(p, index=False))
        _atomic(paths["parquet"], lambda p: self.table.to_parquet(p, index=False))
        _atomic(
            paths["summary"],
            lambda p: Path(p).write_text(json.dumps(self.summary, indent=2) + "\n"),
        )
        return paths


def _atomic(path: Path, write: Callable[[str], Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _related(rows: list[int], corpus: Corpus) -> list[str]:
    return [corpus.ref(r) for r in rows[:MAX_RELATED]]


def curate(
    stores: Sequence[str | Path],
    *,
    names: Sequence[str] | None = None,
    k: int = 10,
    near_dup_threshold: float | None = None,
    labels: bool = True,
    head: str = "logreg",
    head_params: Mapping[str, Any] | None = None,
    folds: int = 5,
    engine: Engine = "auto",
    knn_weight: float = 0.3,
    outlier_z: float = 4.0,
    method: GraphMethod = "auto",
    block_rows: int = 32768,
    seed: int = 0,
    allow_mixed_precision: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CurateResult:
    """Find duplicates, near-duplicates, leaks between splits, outliers and label issues in
    feature stores, from one cosine kNN graph over all of them.

    Parameters
    ----------
    stores
        Feature stores of one backbone (e.g. a dataset's train and test stores). Items
        duplicated across two stores are reported as ``leak``.
    names
        The stores' split names in the table (default: their file stems).
    k
        Neighbours per item in the graph.
    near_dup_threshold
        Cosine at or above which two items are near-duplicates; ``None``: chosen from the
        nearest-neighbour similarities (the summary says how).
    labels
        Look for label issues (needs labelled rows; holds the labelled features in memory).
    head, head_params, folds
        The head cross-validated for out-of-fold probabilities (any registered head).
    engine
        Confident learning by ``cleanlab`` (the ``curate`` extra), ``builtin``, or ``auto``.
    knn_weight
        Share of the graph's neighbour-label vote blended into the head's out-of-fold
        probabilities (0: the head alone). 0.3 raised label-issue F1 on both benchmark sets
        (``benchmarks/curate.py``).
    outlier_z
        Robust standard deviations (log scale) above the median outlier score to flag.
    method, block_rows
        How the graph is built (see :func:`~embedpipe.curate.graph.build_knn_graph`).

    Returns
    -------
    CurateResult
        ``.table`` (a DataFrame), ``.summary``, ``.save(folder)``, ``.to_json()``.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import StoreWriter
    >>> X = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
    >>> X[1] = X[0] + 1e-4
    >>> w = StoreWriter.create("s.h5", dim=8, fingerprint="fp", backbone={})
    >>> w.append(X, [f"i{j}" for j in range(40)], [bytes([j]) * 16 for j in range(40)])
    >>> w.finalize()
    >>> r = curate(["s.h5"], k=5, labels=False)
    >>> r.table[r.table.issue == "near_duplicate"].id.tolist()
    ['i0', 'i1']
    """
    import pandas as pd

    if outlier_z <= 0:
        raise ConfigError(
            Arg("outlier_z", outlier_z), " is not positive; pass e.g. ", Arg("outlier_z", 4), "."
        )
    if folds < 2:
        raise ConfigError(
            Arg("folds", folds),
            " is too few for cross-validation; pass ",
            Arg("folds", 2),
            " or more.",
        )
    timings: dict[str, float] = {}
    t = time.perf_counter()
    corpus = open_corpus(stores, names=names, allow_mixed_precision=allow_mixed_precision)
    n = len(corpus)
    if n < 2:
        raise ConfigError(
            f"curate needs at least 2 rows; the stores hold {n}. Encode more items first."
        )
    timings["read metadata"] = time.perf_counter() - t
    graph = build_knn_graph(
        corpus, min(k, n - 1), method=method, block_rows=block_rows, seed=seed, progress=progress
    )
    timings["knn graph"] = graph.seconds
    t = time.perf_counter()
    threshold = choose_threshold(graph, corpus, near_dup_threshold)
    store_of = corpus.store_of
    exact = exact_pairs(corpus)
    near = near_pairs(graph, threshold.value)
    # A near pair of one content hash is an exact duplicate; a pair across stores is a leak.
    same_hash = corpus.hashes[near.a] == corpus.hashes[near.b]
    exact_keys = set(zip(exact.a.tolist(), exact.b.tolist(), strict=True))
    near_keep = ~same_hash & np.array(
        [(a, b) not in exact_keys for a, b in zip(near.a.tolist(), near.b.tolist(), strict=True)],
        dtype=bool,
    )
    records: list[dict[str, Any]] = []

    def add(row: int, issue: str, score: float, related: list[int], **extra: Any) -> None:
        lab = int(corpus.labels[row])
        records.append(
            {
                "row": row,
                "split": corpus.splits[int(store_of[row])],
                "id": str(corpus.ids[row]),
                "content": str(corpus.contents[row]),
                "issue": issue,
                "score": float(score),
                "related": _related(related, corpus),
                "label": corpus.classes[lab] if lab >= 0 else None,
                "suggested_label": extra.get("suggested"),
                "group": int(extra.get("group", -1)),
            }
        )

    def partners(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> dict[int, list[tuple[float, int]]]:
        out: dict[int, list[tuple[float, int]]] = {}
        for x, y, v in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
            out.setdefault(x, []).append((v, y))
            out.setdefault(y, []).append((v, x))
        return out

    # Leaks: exact or near pairs whose two rows lie in different stores.
    cross_exact = store_of[exact.a] != store_of[exact.b]
    cross_near = near_keep & (store_of[near.a] != store_of[near.b])
    leak_a = np.concatenate([exact.a[cross_exact], near.a[cross_near]])
    leak_b = np.concatenate([exact.b[cross_exact], near.b[cross_near]])
    leak_s = np.concatenate([exact.sim[cross_exact], near.sim[cross_near]])
    for row, lst in sorted(partners(leak_a, leak_b, leak_s).items()):
        lst.sort(key=lambda t: -t[0])
        add(row, "leak", lst[0][0], [r for _, r in lst])
    # Exact duplicates within one store.
    within = ~cross_exact
    ex = type(exact)(exact.a[within], exact.b[within], exact.sim[within])
    ex_groups = clusters(n, ex)
    for row in sorted(partners(ex.a, ex.b, ex.sim)):
        members = np.flatnonzero(ex_groups == ex_groups[row])
        add(
            row, "exact_duplicate", 1.0, [int(m) for m in members if m != row], group=ex_groups[row]
        )
    # Near-duplicates within one store, clustered.
    nk = near_keep & (store_of[near.a] == store_of[near.b])
    nd = type(near)(near.a[nk], near.b[nk], near.sim[nk])
    nd_groups = clusters(n, nd)
    for row, lst in sorted(partners(nd.a, nd.b, nd.sim).items()):
        members = np.flatnonzero(nd_groups == nd_groups[row])
        best = max(v for v, _ in lst)
        add(
            row, "near_duplicate", best, [int(m) for m in members if m != row], group=nd_groups[row]
        )
    timings["duplicates"] = time.perf_counter() - t
    t = time.perf_counter()
    outl = outlier_scores(graph, outlier_z)
    for row in outl.flagged.tolist():
        nb = graph.rows[row][graph.rows[row] >= 0]
        add(row, "outlier", float(outl.scores[row]), nb.tolist())
    timings["outliers"] = time.perf_counter() - t
    lab_issues: LabelIssues | None = None
    label_how = "off"
    if labels:
        t = time.perf_counter()
        rows = np.flatnonzero(corpus.labels >= 0)
        if rows.size:
            X = corpus.read_rows(rows)
            lab_issues = find_label_issues(
                X,
                corpus.labels[rows],
                rows,
                head=head,
                params=head_params,
                folds=folds,
                engine=engine,
                graph=graph,
                knn_weight=knn_weight,
                seed=seed,
            )
            del X
            label_how = lab_issues.how
            for row, score, sug in zip(
                lab_issues.flagged.tolist(),
                lab_issues.scores.tolist(),
                lab_issues.suggested.tolist(),
                strict=True,
            ):
                nb = graph.rows[row][graph.rows[row] >= 0]
                add(row, "label_issue", score, nb.tolist(), suggested=corpus.classes[int(sug)])
        else:
            label_how = "skipped: no labelled rows"
        timings["label issues"] = time.perf_counter() - t
    table = pd.DataFrame.from_records(records, columns=["row", *COLUMNS])
    if len(table):
        table["_order"] = table["issue"].map({name: i for i, name in enumerate(ISSUES)})
        table = table.sort_values(["_order", "score", "row"], ascending=[True, False, True])
        table = table.drop(columns=["_order"])
    table = table.drop(columns=["row"]).reset_index(drop=True)
    for col in ("label", "suggested_label"):  # missing stays None (not NaN) in JSON and CSV
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    counts = {name: int((table["issue"] == name).sum()) for name in ISSUES}
    summary = {
        "stores": [str(p) for p in corpus.paths],
        "splits": corpus.splits,
        "rows": n,
        "k": graph.k,
        "graph": graph.method,
        "near_dup_threshold": round(threshold.value, 6),
        "near_dup_threshold_how": threshold.how,
        "near_duplicate_clusters": int(nd_groups.max() + 1) if n else 0,
        "outliers_how": outl.how,
        "label_issues_how": label_how,
        "counts": counts,
        "seconds": {name: round(v, 3) for name, v in timings.items()},
    }
    return CurateResult(
        table=table,
        threshold=threshold,
        summary=summary,
        corpus=corpus,
        graph=graph,
        outliers=outl,
        labels=lab_issues,
        timings=timings,
    )
