"""Recall evaluation against exact search."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from embedpipe.cli._common import signature_flags
from embedpipe.cli.index_cmd import eval_index_command
from embedpipe.errors import ConfigError, FingerprintMismatchError, StoreError
from embedpipe.index import build_index, evaluate_index, recall_at_k
from embedpipe.index.exact import ExactKnn, drop_self

from .conftest import write_store


def test_recall_at_k_counts_shared_neighbours():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, 9], [5, 6, 7, 8]])
    assert recall_at_k(found, truth, 4) == pytest.approx((2 / 4 + 1) / 2)
    assert recall_at_k(found, truth, 1) == pytest.approx(0.5)


def test_drop_self_removes_the_query_row_or_the_last():
    rows = np.array([[7, 1, 2], [3, 4, 5], [8, 9, 1]])
    np.testing.assert_array_equal(drop_self(rows, np.array([7, 9, 1])), [[1, 2], [3, 4], [8, 9]])


def test_streamed_exact_search_equals_one_shot_search():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 16)).astype(np.float32)
    Q = rng.normal(size=(30, 16)).astype(np.float32)
    ex = ExactKnn(Q, 5, "l2")
    for s in range(0, 1000, 128):
        ex.add(X[s : s + 128], s)
    _, rows = ex.result()
    d = ((Q[:, None] - X[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(rows, np.argsort(d, axis=1)[:, :5])


def test_flat_index_has_recall_one(tmp_path):
    rng = np.random.default_rng(1)
    p = write_store(tmp_path / "s.h5", rng.normal(size=(2000, 16)).astype(np.float32))
    report = evaluate_index(build_index(p, "flat"), n_queries=100)
    assert report.rows[0].recall == {1: 1.0, 10: 1.0, 100: 1.0}
    assert report.rows[0].params == {} and report.n_queries == 100


def test_report_of_an_ivf_index_sweeps_parameters(auto_index, blob_queries):
    report = evaluate_index(
        auto_index, n_queries=300, params=[{"nprobe": 1}, {"nprobe": 8}, {"nprobe": 256}]
    )
    r1, r8, rall = (r.recall for r in report.rows)
    assert r1[10] < r8[10] < rall[10] == pytest.approx(1.0)
    assert rall[1] == rall[100] == pytest.approx(1.0)
    assert all(r.queries_per_s > 0 for r in report.rows)
    assert report.index_bytes > 20_000 * 384 * 4 and report.build_seconds > 0
    assert auto_index.search_params == {"nprobe": auto_index.meta.tuning["value"]}  # restored
    table = report.table()
    for text in (
        "recall@1",
        "recall@10",
        "recall@100",
        "queries/s",
        "memory MB",
        "build s",
        "nprobe=8",
        "exact",
    ):
        assert text in table
    # Fresh queries from a store of the same backbone: no self to leave out.
    fresh = evaluate_index(auto_index, queries=blob_queries[0], n_queries=200)
    assert fresh.rows[0].recall[10] >= 0.95 and "queries.h5" in fresh.queries


def test_queries_of_another_backbone_are_refused(auto_index, tmp_path):
    other = write_store(tmp_path / "o.h5", np.zeros((3, 384), np.float32), fingerprint="fp-x")
    with pytest.raises(FingerprintMismatchError):
        evaluate_index(auto_index, queries=other)


def test_moved_source_stores_can_be_pointed_at(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    p = write_store(tmp_path / "s.h5", X)
    index = build_index(p, "flat")
    moved = p.rename(tmp_path / "moved.h5")
    with pytest.raises(StoreError, match=r"pass their new paths with stores=\[\.\.\.\]") as e:
        evaluate_index(index, n_queries=10)
    flags = signature_flags(inspect.signature(eval_index_command, eval_str=True))
    assert e.value.worded(flags).endswith("pass their new paths with --store PATH.")
    assert evaluate_index(index, n_queries=10, stores=[moved]).rows[0].recall[10] == 1.0
    wrong = write_store(tmp_path / "wrong.h5", X[:100])
    with pytest.raises(ConfigError, match="not the ones this index was built from"):
        evaluate_index(index, stores=[wrong])


def test_hnsw_default_evaluation_uses_queries_outside_the_graph(tmp_path):
    """A held-out row left in an HNSW graph is reached through its own links: eval-index's
    default figure comes from a copy of the graph built without the query rows."""
    from sklearn.datasets import make_blobs

    from embedpipe.index import build_index, evaluate_index
    from embedpipe.index.evaluate import _graph_without
    from embedpipe.index.stores import StoreSet

    from .conftest import write_store

    X, _ = make_blobs(2000, n_features=32, centers=20, cluster_std=3.0, random_state=0)
    store = write_store(tmp_path / "h.h5", X.astype("float32"))
    index = build_index(store, "hnsw", target_recall=0.9, n_tune_queries=200)
    report = evaluate_index(index, n_queries=100, ks=(10,))
    assert "of the HNSW graph (a copy built without them" in report.queries
    q_rows = np.arange(0, 2000, 20)
    with StoreSet(store) as ss:
        copy = _graph_without(index, ss, q_rows, 512)
    assert copy.faiss_index.ntotal == 1900
    found = copy.search_arrays(X[q_rows].astype("float32"), 5)[1]
    assert not np.isin(found, q_rows).any()  # the query rows are not in the copy
