"""Retrieval metrics of eval-index: label and file relevance, checked against plain-Python
definitions over an exact search computed here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embedpipe.index.retrieval import bootstrap, evaluate_retrieval, per_query_metrics

from .conftest import brute_force_rows


def naive(hits: list[list[bool]], n_rel: list[int], k: int) -> dict[str, float]:
    out = {"recall": [], "mrr": [], "ndcg": [], "ap": []}
    for h, n in zip(hits, n_rel, strict=True):
        top = h[:k]
        out["recall"].append(1.0 if any(top) else 0.0)
        first = next((i for i, x in enumerate(top) if x), None)
        out["mrr"].append(0.0 if first is None else 1 / (first + 1))
        dcg = sum(1 / math.log2(i + 2) for i, x in enumerate(top) if x)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(n, k)))
        out["ndcg"].append(dcg / idcg if idcg else 0.0)
        found, s = 0, 0.0
        for i, x in enumerate(top):
            if x:
                found += 1
                s += found / (i + 1)
        out["ap"].append(s / min(n, k) if n else 0.0)
    return {m: float(np.mean(v)) for m, v in out.items()}


def test_label_relevance_matches_the_definitions(content_index, content_store):
    from embedpipe.store import FeatureStore

    with FeatureStore(content_store) as fs:
        X, labels = fs.features, fs.labels
    rep = evaluate_retrieval(content_index, ks=[1, 3, 5], n_queries=8, n_boot=200, seed=3)
    rng = np.random.default_rng(3)
    q_rows = np.sort(rng.choice(24, size=8, replace=False))
    rest = np.setdiff1d(np.arange(24), q_rows)
    found = rest[brute_force_rows(X[rest], X[q_rows], 5)]
    hits = [[labels[r] == labels[q] for r in row] for q, row in zip(q_rows, found, strict=True)]
    n_rel = [int((labels[rest] == labels[q]).sum()) for q in q_rows]
    for k in (1, 3, 5):
        want = naive(hits, n_rel, k)
        assert rep.metrics[f"recall@{k}"][0] == pytest.approx(want["recall"])
        assert rep.metrics[f"MRR@{k}"][0] == pytest.approx(want["mrr"])
        assert rep.metrics[f"nDCG@{k}"][0] == pytest.approx(want["ndcg"])
    assert rep.metrics["mAP@5"][0] == pytest.approx(naive(hits, n_rel, 5)["ap"])
    m, lo, hi = rep.metrics["nDCG@5"]
    assert lo <= m <= hi and rep.n_queries == 8 and "left out" in rep.queries


def test_relevance_file_and_cli(content_index, tmp_path, capsys):
    ids = content_index.ids.tolist()
    rel = tmp_path / "rel.csv"
    # each of 3 queries: one specific relevant sentence
    pairs = [("s00", "s01"), ("s10", "s11"), ("s16", "s08")]
    rel.write_text("query_id,item_id\n" + "".join(f"{q},{i}\n" for q, i in pairs))
    rep = evaluate_retrieval(content_index, relevance=rel, ks=[1, 10], n_boot=100)
    assert rep.n_queries == 3 and rep.relevance.startswith("file")
    found = content_index.search_ids([q for q, _ in pairs], 10)
    hits = [[h.id == i for h in row] for (_, i), row in zip(pairs, found, strict=True)]
    assert rep.metrics["MRR@10"][0] == pytest.approx(naive(hits, [1, 1, 1], 10)["mrr"])
    assert set(ids) >= {q for q, _ in pairs}
    from embedpipe.cli import main

    content_index.save(tmp_path / "c.index")
    try:
        main(["eval-index", str(tmp_path / "c.index"), "--n-queries", "8", "--retrieval"])
    except SystemExit as e:
        assert not e.code
    out = capsys.readouterr().out
    assert "retrieval on 8 queries" in out and "nDCG@10" in out and "mAP@10" in out


def test_bootstrap_interval_and_per_query_shapes():
    m, lo, hi = bootstrap(np.r_[np.ones(50), np.zeros(50)], 500)
    assert m == 0.5 and 0.38 < lo < 0.5 < hi < 0.62
    per = per_query_metrics(np.zeros((2, 3), bool), np.array([0, 2]), [3])
    assert per["nDCG@3"].tolist() == [0.0, 0.0] and per["mAP@3"].tolist() == [0.0, 0.0]
