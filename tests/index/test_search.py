"""The search API over vectors, ids and stores: results, guards and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedpipe.errors import ConfigError, FingerprintMismatchError
from embedpipe.index import build_index

from .conftest import write_store


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 24)).astype(np.float32)
    y = np.arange(400) % 3
    y[::7] = -1
    path = write_store(
        tmp_path_factory.mktemp("lab") / "lab.h5", X, labels=y, classes=["red", "green", "blue"]
    )
    return path, X, y


def test_results_carry_ids_scores_and_class_names(labelled):
    path, X, y = labelled
    index = build_index(path, "flat")
    hits = index.search(X[:3], k=4)
    assert [len(h) for h in hits] == [4, 4, 4]
    for q, h in enumerate(hits):
        assert (
            h[0].id == f"v{q:06d}" and h[0].rank == 1 and h[0].score == pytest.approx(1.0, abs=1e-5)
        )
        assert [n.rank for n in h] == [1, 2, 3, 4]
        assert all(
            a.score >= b.score for a, b in zip(h, h[1:], strict=False)
        )  # cosine: higher is closer
        for n in h:
            assert n.label == (None if y[n.row] < 0 else ["red", "green", "blue"][y[n.row]])
    assert hits[0][0].to_dict() == {
        "rank": 1,
        "id": "v000000",
        "score": hits[0][0].score,
        "label": None,
        "row": 0,
    }


def test_l2_scores_are_distances_lower_first(labelled):
    path, X, _ = labelled
    index = build_index(path, "flat", metric="l2")
    h = index.search(X[5] + 0.01, k=3)[0]
    assert h[0].id == "v000005" and h[0].score == pytest.approx(0.01 * np.sqrt(24), rel=1e-2)
    assert h[0].score <= h[1].score <= h[2].score and index.closer == "lower"


def test_search_by_id_excludes_the_item_itself(labelled):
    path, X, _ = labelled
    index = build_index(path, "flat")
    hits = index.search_ids(["v000010", "v000011"], k=5)
    assert [len(h) for h in hits] == [5, 5]
    assert "v000010" not in [n.id for n in hits[0]]
    expected = [n.id for n in index.search(X[10], k=6)[0][1:]]
    assert [n.id for n in hits[0]] == expected
    assert index.search_ids("v000010", k=2, exclude_self=False)[0][0].id == "v000010"
    with pytest.raises(KeyError, match="'nope' is not in this index"):
        index.search_ids(["nope"])


def test_find_is_the_one_entry_the_shorthands_share(labelled):
    path, X, y = labelled
    index = build_index(path, "flat")
    where = "label == 'red'"
    assert index.find(vectors=X[:2], k=3, where=where) == index.search(X[:2], 3, where=where)
    assert index.find(ids=["v000003"], k=3) == index.search_ids(["v000003"], 3)
    mine = index.find(ids=["v000003"], k=3, where=where, exclude_self=False)[0]
    assert mine[0].id == "v000003" and all(y[n.row] == 0 for n in mine)
    with pytest.raises(ConfigError, match=r"exactly one of vectors=, texts=, images= or ids="):
        index.find(k=3)
    with pytest.raises(ConfigError, match=r"\(got vectors, ids\)"):
        index.find(vectors=X[:1], ids=["v000001"])
    with pytest.raises(ConfigError, match="positive integer"):
        index.find(ids=["v000001"], k=0)


def test_k_larger_than_the_index_returns_everything(labelled):
    path, X, _ = labelled
    index = build_index(path, "flat")
    assert len(index.search(X[0], k=10_000)[0]) == 400


def test_query_vectors_of_another_backbone_are_refused(labelled, tmp_path):
    path, X, _ = labelled
    index = build_index(path, "flat")
    with pytest.raises(FingerprintMismatchError, match="query vectors"):
        index.search(X[:2], fingerprint="fp-someone-else")
    assert index.search(X[:1], fingerprint=index.fingerprint)[0][0].id == "v000000"
    other = write_store(tmp_path / "other.h5", X[:5], fingerprint="fp-other")
    with pytest.raises(FingerprintMismatchError, match="other.h5"):
        index.search_store(other)
    same = write_store(tmp_path / "same.h5", X[:5], ids=[f"q{i}" for i in range(5)])
    assert [h[0].id for h in index.search_store(same, k=1)] == [f"v{i:06d}" for i in range(5)]


@pytest.mark.parametrize(
    ("query", "k", "match"),
    [
        (np.zeros((2, 7)), 3, "dimension 24"),
        (np.full((1, 24), np.nan), 3, "NaN"),
        (np.zeros((1, 24)), 0, "positive integer"),
        (np.array([["a"] * 24]), 3, "numbers"),
    ],
)
def test_bad_queries_are_clear_errors(labelled, query, k, match):
    index = build_index(labelled[0], "flat")
    with pytest.raises(ConfigError, match=match):
        index.search(query, k=k)


def test_vectors_come_back_for_search_by_id(auto_index, blobs):
    _, X, _ = blobs
    v = auto_index.vectors(["v000003"])[0]
    np.testing.assert_allclose(v, X[3] / np.linalg.norm(X[3]), rtol=1e-5, atol=1e-6)


def test_search_params_can_be_changed(auto_index):
    before = auto_index.search_params
    try:
        auto_index.set_search_params(nprobe=7)
        assert auto_index.search_params == {"nprobe": 7} and auto_index.meta.search_params == {
            "nprobe": 7
        }
        with pytest.raises(ConfigError, match="efSearch"):
            auto_index.set_search_params(efSearch=10)
    finally:
        auto_index.set_search_params(**before)
