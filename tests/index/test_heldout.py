"""Recall measured on held-out queries, on real MiniLM embeddings of Rotten Tomatoes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli.index_cmd import register
from embedpipe.index import build_index, evaluate_index
from embedpipe.index.evaluate import evaluate_query_sets
from embedpipe.store import FeatureStore

from .conftest import brute_force_rows, recall_of, write_store


@pytest.fixture(scope="module")
def rotten_arrays(rotten_stores):
    train, test = rotten_stores
    with FeatureStore(train) as a, FeatureStore(test) as b:
        return a.features, b.features


@pytest.fixture(scope="module")
def split_queries(rotten_stores, tmp_path_factory):
    """The test split's snippets in two halves: a store of tuning queries, and fresh queries
    that neither the index nor the tuning ever sees."""
    with FeatureStore(rotten_stores[1]) as fs:
        Q, ids, fp, backbone = fs.features, fs.ids.tolist(), fs.fingerprint, fs.backbone
    half = len(Q) // 2
    tune = write_store(
        tmp_path_factory.mktemp("tuneq") / "tune-queries.h5",
        Q[:half],
        ids=ids[:half],
        fingerprint=fp,
        backbone=backbone,
    )
    return tune, Q[half:]


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_tuned_indexes_reach_the_target_on_held_out_queries(
    rotten_stores, rotten_arrays, split_queries, kind
):
    """Tuned to recall@10 ≥ 0.95 on real queries (half of the test split's snippets), the
    index reaches it on the other half (never in the index, never used to tune), measured by
    an exact numpy search independent of embedpipe."""
    X, _ = rotten_arrays
    tune, fresh = split_queries
    index = build_index(rotten_stores[0], kind, target_recall=0.95, k=10, tune_queries=tune)
    t = index.meta.tuning
    assert t["reached"] and t["recall_low"] >= 0.95 and t["n_queries"] == 150
    assert t["recall_low"] <= t["recall"] <= t["recall_high"]
    assert "tune-queries.h5" in t["queries"]
    _, found = index.search_arrays(fresh, 10)
    r = recall_of(found, brute_force_rows(X, fresh, 10))
    assert r >= 0.95


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_default_tuning_holds_rows_out_and_then_adds_them(rotten_stores, rotten_arrays, kind):
    X, Q = rotten_arrays
    index = build_index(rotten_stores[0], kind, target_recall=0.95, k=10, n_tune_queries=300)
    t = index.meta.tuning
    assert t["reached"] and t["recall_low"] >= 0.95 and t["n_queries"] == 300
    assert "held out of the index" in t["queries"]
    # The test split's snippets (another sample of the same source) land close to the target.
    _, found = index.search_arrays(Q, 10)
    assert recall_of(found, brute_force_rows(X, Q, 10)) >= 0.93
    # All rows are searchable once tuned, the held-out ones included.
    assert len(index) == len(X)
    top = index.search(X[:50], k=1)
    assert [h[0].row for h in top] == list(range(50))


def test_held_out_tuning_is_stricter_than_tuning_on_indexed_rows(rotten_stores, rotten_arrays):
    """The held-out queries are out of the graph while HNSW is tuned: the efSearch chosen is
    at least the one that rows inside the graph (left out of their own results) would need."""
    from embedpipe.index.exact import ExactKnn, drop_self
    from embedpipe.index.metric import prepare
    from embedpipe.index.tune import tune_search_param

    X, _ = rotten_arrays
    index = build_index(rotten_stores[0], "hnsw", target_recall=0.95, k=10, n_tune_queries=300)
    rows = np.sort(np.random.default_rng(3).choice(len(X), 300, replace=False))
    xq = prepare(X[rows], "cosine")
    ex = ExactKnn(xq, 11, "cosine")
    ex.add(prepare(X, "cosine"), 0)
    truth = drop_self(ex.result()[1], rows)
    inside = tune_search_param(
        index.faiss_index, xq, truth, k=10, target_recall=0.95, self_rows=index.faiss_rows(rows)
    )
    assert index.meta.tuning["value"] >= inside.value


def test_a_query_store_tunes_and_eval_index_reports_each_query_set(
    rotten_stores, rotten_arrays, tmp_path
):
    train, test = rotten_stores
    X, Q = rotten_arrays
    index = build_index(train, "ivf", target_recall=0.9, tune_queries=test, n_tune_queries=200)
    t = index.meta.tuning
    assert t["n_queries"] == 200 and "test.h5" in t["queries"] and t["reached"]
    assert index.meta.tuning["recall_low"] >= 0.9
    reports = evaluate_query_sets(index, [None, test], n_queries=200, ks=(1, 10))
    held, fresh = reports
    assert "held out" in held.queries and "test.h5" in fresh.queries
    assert held.n_queries == fresh.n_queries == 200
    # The fresh-query recall is what an independent exact search says.
    with FeatureStore(test) as fs:
        rows = np.sort(np.random.default_rng(1).choice(len(fs), 200, replace=False))
    _, found = index.search_arrays(Q[rows], 10)
    assert fresh.rows[0].recall[10] == pytest.approx(
        recall_of(found, brute_force_rows(X, Q[rows], 10)), abs=1e-9
    )
    lo, hi = fresh.rows[0].recall_ci[10]
    assert lo <= fresh.rows[0].recall[10] <= hi
    # Through the CLI: one table per query set.
    app = typer.Typer()
    register(app)
    out = tmp_path / "rt.index"
    index.save(out)
    r = CliRunner().invoke(
        app, ["eval-index", str(out), "--queries", str(test), "--n-queries", "100"]
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("queries/s") == 2 and "held out" in r.output and "test.h5" in r.output
    assert "95% interval" in r.output
    r = CliRunner().invoke(
        app, ["eval-index", str(out), "--queries", str(test), "--n-queries", "50", "--json"]
    )
    assert [rep["n_queries"] for rep in json.loads(r.stdout)] == [50, 50]


def test_held_out_evaluation_leaves_the_query_rows_out_of_truth_and_results(tmp_path):
    """Duplicated rows: a query's twin is its nearest neighbour unless the twin is a query too."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 16)).astype(np.float32)
    X = np.concatenate([base, base + 1e-4])  # row i and row i + 300 are twins
    p = write_store(tmp_path / "twins.h5", X)
    index = build_index(p, "flat")
    report = evaluate_index(index, n_queries=600, ks=(1,))  # n // 2 = 300 queries at most
    assert report.n_queries == 300 and report.rows[0].recall[1] == 1.0


def test_a_missed_target_is_said_plainly(tmp_path):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(2500, n_features=16, centers=10, random_state=3)
    p = write_store(tmp_path / "s.h5", X.astype(np.float32))
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(
        app,
        [
            "index",
            str(p),
            "-o",
            str(tmp_path / "pq"),
            "--kind",
            "ivfpq",
            "--target-recall",
            "0.99",
            "--n-tune-queries",
            "200",
            "--rerank",
            "0",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "NOT reached" in r.output and "95% interval" in r.output and "200 queries" in r.output


def test_tune_queries_from_a_text_file_are_encoded_and_tuned_on(content_store, tmp_path):
    """--tune-queries accepts raw queries: they go through the stores' backbone, and the
    build's recall is measured (and reached) on them, not on held-out rows."""
    from embedpipe.index import build_index

    f = tmp_path / "queries.txt"
    f.write_text("a rocket in space\nbake bread\nthe goalkeeper saved it\nfresh basil sauce\n")
    index = build_index(content_store, "hnsw", tune_queries=f, target_recall=0.9, k=3)
    t = index.meta.tuning
    assert t is not None and t["n_queries"] == 4 and "queries.txt" in t["queries"]
    assert t["reached"] and t["recall_low"] >= 0.9
