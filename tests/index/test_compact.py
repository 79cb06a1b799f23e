"""Compact vectors: int8 and binary codes, a prefix of the dimensions; with exact re-ranking
from the stores their recall comes back; the build records memory and held-out recall."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from embedpipe.errors import ConfigError
from embedpipe.index import SimilarityIndex, build_index

from .conftest import brute_force_rows, recall_of, write_store


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    X, _ = make_blobs(3000, n_features=64, centers=30, cluster_std=3.0, random_state=5)
    X = X.astype(np.float32)
    Q = X[:100] + np.random.default_rng(2).normal(0, 1.0, (100, 64)).astype(np.float32)
    return write_store(tmp_path_factory.mktemp("compact") / "c.h5", X), X, Q


@pytest.mark.parametrize(
    "kind, opts",
    [("int8", {}), ("binary", {"rerank": 0}), ("flat", {"dim": 16})],
)
def test_compact_codes_lose_recall_that_rerank_brings_back(data, tmp_path, kind, opts):
    path, X, Q = data
    truth = brute_force_rows(X, Q, 10)
    bare = build_index(path, kind, n_tune_queries=300, **opts)
    full = build_index(path, kind, n_tune_queries=300, **{**opts, "rerank": 100})
    r_bare = recall_of(bare.search_arrays(Q, 10)[1], truth)
    r_full = recall_of(full.search_arrays(Q, 10)[1], truth)
    assert r_full >= 0.97 and r_full > r_bare
    # the build measured its held-out recall and says on what
    for idx, r in ((bare, r_bare), (full, r_full)):
        rec = idx.meta.recall
        assert rec is not None and rec["n_queries"] == 300 and "held out" in rec["queries"]
        assert abs(rec["recall"] - r) < 0.15
    full.save(tmp_path / "i")
    back = SimilarityIndex.load(tmp_path / "i")
    np.testing.assert_array_equal(back.search_arrays(Q, 10)[1], full.search_arrays(Q, 10)[1])
    # filters work over compact codes too
    hits = back.search(Q[:3], 5, where="id in ('v000001', 'v000002', 'v000003')")
    assert all(len(h) == 3 for h in hits)


def test_prefix_index_memory_and_bad_dim(data, tmp_path):
    path, X, Q = data
    idx = build_index(path, "flat", dim=32)
    assert idx.meta.truncate_dim == 32 and idx.dim == 64
    idx.save(tmp_path / "p")
    assert (tmp_path / "p" / "index.faiss").stat().st_size < 0.6 * 3000 * 64 * 4
    for bad in (0, 65, 2.5):
        with pytest.raises(ConfigError, match="dim="):
            build_index(path, "flat", dim=bad)


def test_cli_build_summary_says_memory_and_recall(data, tmp_path, capsys):
    from embedpipe.cli import main

    try:
        main(["index", str(data[0]), "--out", str(tmp_path / "b"), "--kind", "binary", "-q"])
    except SystemExit as e:
        assert not e.code
    out = capsys.readouterr().out
    assert "x of Flat's" in out and "held-out recall@10" in out and "held out of the index" in out


def test_binary_learns_medians_when_a_rotation_would_outweigh_the_codes():
    import faiss

    from embedpipe.index.plan import plan_index

    small, big = plan_index(10_000, 384, "binary"), plan_index(10_000_000, 384, "binary")
    assert small.factory == "LSH384t" and big.factory == "LSH384r"
    assert small.n_train > 0 and not faiss.index_factory(384, small.factory).is_trained
    assert big.n_train == 0 and small.bytes_estimate < 10_000 * 384 * 4 / 30
