"""Exact re-ranking of compressed indexes from the stores' float features."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.errors import ConfigError
from embedpipe.index import SimilarityIndex, build_index, evaluate_index

from .conftest import brute_force_rows, recall_of, write_store


@pytest.fixture(scope="module")
def gaussian(tmp_path_factory):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(2500, 32)).astype(np.float32)
    Q = rng.normal(size=(100, 32)).astype(np.float32)
    path = write_store(tmp_path_factory.mktemp("rerank") / "g.h5", X)
    return path, X, Q, brute_force_rows(X, Q, 10)


@pytest.mark.parametrize("kind", ["ivfpq", "ivfsq", "binary"])
def test_rerank_lifts_the_recall_cap_of_compressed_indexes(gaussian, kind):
    path, X, Q, truth = gaussian
    plain = build_index(path, kind, target_recall=None, rerank=0)
    if plain.search_params:
        plain.set_search_params(**{next(iter(plain.search_params)): 10_000})  # every list
    _, found = plain.search_arrays(Q, 10)
    capped = recall_of(found, truth)
    plain.set_rerank(500)
    scores, found = plain.search_arrays(Q, 10)
    reranked = recall_of(found, truth)
    assert reranked > capped and reranked >= 0.97
    # Scores are exact cosine similarities, best first.
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    exact = np.take_along_axis(Qn @ Xn.T, found, axis=1)
    np.testing.assert_allclose(scores, exact, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()


def test_tuning_with_rerank_reaches_the_target_and_survives_a_save(gaussian, tmp_path):
    path, X, Q, truth = gaussian
    index = build_index(path, "ivfpq", target_recall=0.95, rerank=200, n_tune_queries=200)
    assert index.meta.tuning["reached"] and index.meta.tuning["rerank"] == 200
    loaded = SimilarityIndex.load(index.save(tmp_path / "pq"))
    assert loaded.rerank == 200
    _, found = loaded.search_arrays(Q, 10)
    assert recall_of(found, truth) >= 0.95
    report = evaluate_index(loaded, n_queries=100, ks=(10,))
    assert report.rerank == 200 and report.rows[0].recall[10] >= 0.95
    assert "re-rank of 200" in report.table()


def test_rerank_needs_the_source_stores(gaussian, tmp_path):
    path, X, Q, _ = gaussian
    copy = write_store(tmp_path / "copy.h5", X)
    index = build_index(copy, "ivfsq", target_recall=None, rerank=50)
    saved = index.save(tmp_path / "sq")
    copy.unlink()
    with pytest.raises(ConfigError, match="source stores"):
        SimilarityIndex.load(saved).search(Q[:2], k=3)
    with pytest.raises(ConfigError, match="rerank"):
        index.set_rerank(-1)
